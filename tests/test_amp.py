"""Mixed precision on the CPU (rle.amp.MixedPrecisionOptimWrapper, ``--amp``): bfloat16
training steps of every registered head are finite and move the weights; the RLE loss and the
decoders keep float32 maths under autocast; float16 uses loss scaling and resumes it."""

import copy
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.optim import build_optim_wrapper
from mmengine.structures import BaseDataElement

from rle.amp import MixedPrecisionOptimWrapper
from rle.registry import MODELS

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(deconv_channels=(8,))
HEADS = {
    "RLEHead": dict(type="RLEHead"),
    "RegressionHead": dict(type="RegressionHead"),
    "SoftArgmaxHead": dict(type="SoftArgmaxHead", **SMALL),
    "DSNTHead": dict(type="DSNTHead", **SMALL),
    "DebiasedIPRHead": dict(type="DebiasedIPRHead", **SMALL),
    "SamplingArgmaxHead": dict(type="SamplingArgmaxHead", num_samples=4, **SMALL),
    "HeatmapRLEHead": dict(type="HeatmapRLEHead", **SMALL),
}
CASES = [(name, 2) for name in HEADS] + [(name, 3) for name in HEADS]


def _estimator(head: dict, num_dims: int, **kwargs):
    head = dict(head, num_keypoints=5, num_dims=num_dims)
    if num_dims == 3 and "deconv_channels" in head:
        head["depth_bins"] = 4
    torch.manual_seed(0)
    return MODELS.build(
        dict(
            type="TopdownPoseEstimator",
            backbone=dict(type="TimmBackbone", model_name="test_resnet"),
            head=head,
            **kwargs,
        )
    )


def _batch(num_dims: int, batch: int = 4):
    gen = torch.Generator().manual_seed(1)
    inputs = [torch.randint(0, 256, (3, 64, 48), generator=gen, dtype=torch.uint8)
              for _ in range(batch)]  # fmt: skip
    samples = []
    for _ in range(batch):
        s = BaseDataElement()
        s.keypoint_labels = torch.rand(5, num_dims, generator=gen) - 0.5
        s.keypoint_weights = torch.ones(5)
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


def _wrapper(model, **kwargs):
    # the rle scope, as a Runner with the configs' default_scope builds it
    cfg = dict(type="MixedPrecisionOptimWrapper", optimizer=dict(type="AdamW", lr=1e-3), **kwargs)
    return build_optim_wrapper(model, dict(cfg, _scope_="rle"))


def test_every_registered_head_is_covered():
    import heads

    _estimator(HEADS["RegressionHead"], 2)  # the registry imports the heads on the first build
    registered = {
        name
        for name, cls in MODELS.module_dict.items()
        if isinstance(cls, type) and issubclass(cls, heads.BaseHead)
    }
    assert registered == set(HEADS)


@pytest.mark.parametrize("name, num_dims", CASES, ids=[f"{n}-{d}d" for n, d in CASES])
def test_a_bfloat16_step_of_every_head_is_finite_and_trains(name, num_dims):
    model = _estimator(HEADS[name], num_dims).train()
    wrapper = _wrapper(model)
    before = {k: p.detach().clone() for k, p in model.named_parameters()}
    grads = {}
    hooks = [
        p.register_hook(lambda g, k=k: grads.__setitem__(k, g.detach().clone()))
        for k, p in model.named_parameters()
    ]
    losses = model.train_step(_batch(num_dims), wrapper)
    for h in hooks:
        h.remove()
    assert wrapper.dtype == "bfloat16" and wrapper.loss_scaler is None  # the CPU's default
    assert losses and all(torch.isfinite(v).all() for v in losses.values()), losses
    assert grads and all(torch.isfinite(g).all() for g in grads.values())
    # both the bfloat16 backbone and the float32 head layers were updated
    moved = [k for k, p in model.named_parameters() if not torch.equal(p, before[k])]
    assert any(k.startswith("backbone.") for k in moved)
    assert any(k.startswith("head.") for k in moved)


def test_autocast_reaches_the_backbone():
    """The wrapper's context autocasts: the backbone's features come out in bfloat16."""
    model = _estimator(HEADS["RLEHead"], 2)
    wrapper = _wrapper(model)
    x = torch.randn(2, 3, 64, 48)
    with wrapper.optim_context(model):
        feats = model.extract_feat(x)
    assert feats[-1].dtype == torch.bfloat16
    assert model.extract_feat(x)[-1].dtype == torch.float32


def test_float32_dtype_turns_autocast_off():
    """``dtype="float32"``: the wrapper trains in plain float32, even inside an outer autocast
    (what ``--cfg-options optim_wrapper.dtype=float32`` gives a bfloat16 config)."""
    model = _estimator(HEADS["RLEHead"], 2)
    wrapper = _wrapper(model, dtype="float32")
    x = torch.randn(2, 3, 64, 48)
    with torch.autocast("cpu", dtype=torch.bfloat16), wrapper.optim_context(model):
        feats = model.extract_feat(x)
    assert feats[-1].dtype == torch.float32 and wrapper.loss_scaler is None


def test_channels_last_backbone_is_the_same_model():
    """``memory_format="channels_last"``: the backbone's 4-D weights and its input are channels
    last, the state dict and the outputs are those of the contiguous model (same weights)."""
    plain = _estimator(HEADS["SoftArgmaxHead"], 2).eval()
    last = _estimator(HEADS["SoftArgmaxHead"], 2, memory_format="channels_last").eval()
    conv = next(p for p in last.backbone.parameters() if p.dim() == 4)
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert plain.state_dict().keys() == last.state_dict().keys()
    last.load_state_dict(plain.state_dict())  # copies into the channels-last weights
    assert next(p for p in last.backbone.parameters() if p.dim() == 4).is_contiguous(
        memory_format=torch.channels_last)  # fmt: skip
    x = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        torch.testing.assert_close(last(x).coords, plain(x).coords, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="memory_format"):
        _estimator(HEADS["RLEHead"], 2, memory_format="nhwc")


def test_the_rle_loss_is_float32_maths_under_bfloat16_autocast():
    """Inside autocast the loss disables it: the same float32 value, bit for bit, as outside
    (were the flow's linear layers autocast, the value would move by ~1e-2)."""
    head = MODELS.build(dict(type="RLEHead", in_channels=32, num_keypoints=5))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # a flow far from its near-identity initialisation
        for p in head.loss_module.flow.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    feats = torch.randn(3, 32, 2, 2, generator=gen)
    output = head(feats)  # float32 mu and sigma, as the head's float32 output layer gives
    target = torch.rand(3, 5, 2, generator=gen) - 0.5
    plain = head.loss(output, target)["loss_rle"]
    z = torch.randn(8, 2, generator=gen)
    flow_plain = head.loss_module.flow.log_prob(z)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cast = head.loss(output, target)["loss_rle"]
        # the check can fail: the flow's own layers do run in bfloat16 under autocast
        assert not torch.allclose(head.loss_module.flow.log_prob(z), flow_plain, atol=1e-4)
    assert cast.dtype == torch.float32
    assert torch.equal(cast, plain)


@pytest.mark.parametrize("name", ["SoftArgmaxHead", "DSNTHead", "SamplingArgmaxHead"])
def test_decoders_give_float32_coordinates_under_autocast(name):
    model = _estimator(HEADS[name], 2).eval()
    x = torch.randn(2, 3, 64, 48)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model.head(model.extract_feat(x))
    assert out.heatmaps is None or out.coords.dtype == torch.float32


def test_float16_scales_the_loss_and_resumes_the_scale():
    model = _estimator(HEADS["RLEHead"], 2).train()
    wrapper = _wrapper(model, dtype="float16", loss_scale=1024.0)
    model.train_step(_batch(2), wrapper)
    assert wrapper.loss_scaler is not None
    state = wrapper.state_dict()
    assert "loss_scaler" in state and state["loss_scaler"]["scale"] > 0
    # a fresh wrapper loads the scale before its first step (a resumed run)
    fresh = _wrapper(copy.deepcopy(model), dtype="float16")
    fresh.load_state_dict(copy.deepcopy(state))
    with fresh.optim_context(model):  # the scaler is made, with the loaded state, on entry
        pass
    assert fresh.loss_scaler.get_scale() == wrapper.loss_scaler.get_scale()


def test_wrapper_arguments_are_validated():
    model = _estimator(HEADS["RegressionHead"], 2)
    with pytest.raises(ValueError, match="dtype"):
        _wrapper(model, dtype="float8")
    with pytest.raises(TypeError, match="loss_scale"):
        _wrapper(model, dtype="float16", loss_scale=[1])
    assert isinstance(_wrapper(model, dtype=torch.bfloat16), MixedPrecisionOptimWrapper)


def _tool(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_load_config_amp_selects_the_wrapper():
    from rle.engine import load_config

    path = ROOT / "configs/benchmark/synthcoco/rle_resnet10t_1xb16-30e_synthcoco-64x48.py"
    cfg = load_config(path, amp=True)
    assert cfg.optim_wrapper.type == "MixedPrecisionOptimWrapper"
    assert cfg.optim_wrapper.dtype is None  # the device's default
    assert cfg.optim_wrapper.clip_grad.max_norm == 35.0  # the rest of the wrapper kept
    # the demo trains in bfloat16 by itself; --amp keeps its dtype, the override turns it off
    demo = ROOT / "configs/demo/rle_resnet10t_bf16-1xb16-15e_synthcoco-64x48.py"
    for amp in (False, True):
        cfg = load_config(demo, amp=amp)
        assert (cfg.optim_wrapper.type, cfg.optim_wrapper.dtype) == (
            "MixedPrecisionOptimWrapper", "bfloat16")  # fmt: skip
        assert cfg.optim_wrapper.optimizer.fused is True
        assert cfg.model.memory_format == "channels_last"
    cfg = load_config(demo, cfg_options={"optim_wrapper.dtype": "float32"})
    assert cfg.optim_wrapper.dtype == "float32"
    assert load_config(path, amp="float16").optim_wrapper.dtype == "float16"
    with pytest.raises(ValueError, match="amp must be"):
        load_config(path, amp="int8")
    args = _tool("train").parse_args([str(path), "--amp"])
    assert args.amp is True
    assert _tool("train").parse_args([str(path), "--amp", "float16"]).amp == "float16"


def test_training_with_amp_on_the_cpu(tmp_path):
    """``load_config(..., amp=True)`` (``tools/train.py --amp``) trains and checkpoints on the
    CPU in bfloat16."""
    from rle.engine import load_config, train

    spec = importlib.util.spec_from_file_location("_training", ROOT / "tests" / "test_training.py")
    training = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(training)
    path = ROOT / "configs/synthcoco/rle_resnet18_1xb32-20e_synthcoco-128x96.py"
    cfg = load_config(path, work_dir=str(tmp_path / "work"), amp=True,
                      cfg_options=training._tiny(path, tmp_path))  # fmt: skip
    train(cfg)
    ckpt = torch.load(tmp_path / "work" / "epoch_1.pth", map_location="cpu", weights_only=False)
    assert "loss_scaler" not in ckpt["optimizer"]  # bfloat16 needs no scaler
    weights = [v for v in ckpt["state_dict"].values() if v.is_floating_point()]
    assert all(np.isfinite(v.numpy()).all() for v in weights)
