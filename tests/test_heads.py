"""One contract test over every registered head, plus head-specific checks."""

import copy
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import heads
from heads import HeadOutput, Prediction
from heads.functional import heatmap_confidence
from rle.coords import index_to_norm, to_frame
from rle.registry import MODELS

HEAD_NAMES = sorted(n for n, c in MODELS.module_dict.items() if issubclass(c, heads.BaseHead))
HEATMAP_KW = dict(deconv_channels=(8,), depth_bins=4)
OVERFIT_STEPS = 40


def build(name, num_dims=2, **kw):
    cfg = dict(type=name, in_channels=16, num_keypoints=3, num_dims=num_dims, **kw)
    if issubclass(MODELS.get(name), heads.HeatmapHead):
        cfg = {**HEATMAP_KW, **cfg}
    head = MODELS.build(cfg)
    head.init_weights()
    return head


def test_registry_lists_every_exported_head():
    exported = {
        n for n in heads.__all__ if n.endswith("Head") and n not in ("BaseHead", "HeatmapHead")
    }
    assert set(HEAD_NAMES) == exported
    for name in HEAD_NAMES:
        assert MODELS.get(name).__name__ == name
        assert MODELS.scope == "rle"


@pytest.mark.parametrize("num_dims", [2, 3])
@pytest.mark.parametrize("name", HEAD_NAMES)
def test_head_contract(name, num_dims):
    torch.manual_seed(0)
    head = build(name, num_dims)
    head.train()
    feats = [torch.randn(2, 8, 8, 6), torch.randn(2, 16, 4, 3)]  # multi-scale: the last is used
    out = head(feats)
    assert isinstance(out, HeadOutput)
    assert out.coords.shape == (2, 3, num_dims)
    # HeadOutput.sigma is RLE's (the losses read it); heatmap heads give theirs in predict only
    rle = isinstance(head, heads.RLELossMixin)
    assert (out.sigma is not None) == rle
    if rle:
        assert out.sigma.shape == (2, 3, num_dims) and (out.sigma > 0).all()
    if out.heatmaps is not None:
        spatial = (8, 6) if num_dims == 2 else (4, 8, 6)
        assert out.heatmaps.shape == (2, 3, *spatial)
        torch.testing.assert_close(out.heatmaps.flatten(2).sum(-1), torch.ones(2, 3))
    target = torch.rand(2, 3, num_dims) - 0.5
    weight = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.5, 1.0]])
    torch.manual_seed(1)  # sampling-argmax draws its samples from the global RNG
    losses = head.loss(out, target, weight)
    assert any("loss" in k for k in losses)
    for value in losses.values():
        assert value.dim() == 0 and torch.isfinite(value)
    total = sum(v for k, v in losses.items() if "loss" in k)
    total.backward()
    for pname, param in head.named_parameters():
        assert param.grad is not None, f"{name}: no gradient for {pname}"
        assert torch.isfinite(param.grad).all(), pname
    # loss from features gives the same as loss from the output, to the bit (one code path)
    torch.manual_seed(1)
    from_feats = head.loss(feats, target, weight)
    assert from_feats.keys() == losses.keys()
    for key, value in losses.items():
        assert torch.equal(from_feats[key], value), f"{name}: {key}"
    head.eval()
    with torch.no_grad():
        pred = head.predict(feats)
        assert isinstance(pred, Prediction)
        assert pred.coords.shape == (2, 3, num_dims)
        assert pred.scores.shape == (2, 3)
        assert ((pred.scores >= 0) & (pred.scores <= 1)).all()
        assert (pred.sigma is not None) == head.has_sigma
        if head.has_sigma:
            assert pred.sigma.shape == (2, 3, num_dims) and (pred.sigma >= 0).all()
        assert torch.isfinite(pred.coords).all()


@pytest.mark.parametrize("num_dims", [2, 3])
@pytest.mark.parametrize("name", HEAD_NAMES)
def test_head_overfits_one_batch(name, num_dims):
    # a few dozen Adam steps on one fixed batch must drive every loss term down and the
    # predictions towards the targets: a sign error in any loss (or a gradient that does not
    # reach the parameters) breaks it
    torch.manual_seed(0)
    head = build(name, num_dims)
    head.train()
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(4, 16, 4, 3, generator=gen)
    target = torch.rand(4, 3, num_dims, generator=gen) * 0.6 - 0.3
    optim = torch.optim.Adam(head.parameters(), lr=0.01)
    rle = isinstance(head, heads.RLELossMixin)  # sigma trained by the loss

    def step():
        out = head(feats)
        losses = head.loss(out, target)
        error = (out.coords - target).abs().mean().item()
        log_sigma = out.sigma.log().mean().item() if rle else None
        return losses, error, log_sigma

    first, first_error, first_log_sigma = step()
    for _ in range(OVERFIT_STEPS):
        losses, _, _ = step()
        optim.zero_grad()
        sum(v for k, v in losses.items() if "loss" in k).backward()
        optim.step()
    last, last_error, last_log_sigma = step()
    # every optimised term, and the RLE terms logged separately (a sign flip in one of them
    # can hide in the total), falls by a third of its size
    for key in [k for k in first if "loss" in k] + [k for k in ("rle_nf", "rle_q") if k in first]:
        a, b = first[key].item(), last[key].item()
        assert b < a - 0.3 * abs(a), f"{name} {num_dims}-D: {key} {a:.4f} -> {b:.4f}"
        if not rle:
            # distances and divergences: a flipped sign would "fall" below zero
            assert min(a, b) >= 0, f"{name} {num_dims}-D: {key} {a:.4f} -> {b:.4f} < 0"
    assert last_error < 0.7 * first_error, (
        f"{name} {num_dims}-D: mean |coords - target| {first_error:.4f} -> {last_error:.4f}"
    )
    if rle:
        # the residuals shrink, so must the predicted scale
        assert last_log_sigma < first_log_sigma - 0.1, (
            f"{name} {num_dims}-D: mean log sigma {first_log_sigma:.3f} -> {last_log_sigma:.3f}"
        )


@pytest.mark.parametrize("name", HEAD_NAMES)
def test_head_bad_input(name):
    head = build(name)
    with pytest.raises(ValueError, match=r"feats must have shape \(B, C=16, h, w\)"):
        head(torch.randn(2, 8, 4, 3))
    with pytest.raises(TypeError, match="feats"):
        head("features")
    out = head(torch.randn(2, 16, 4, 3))
    with pytest.raises(ValueError, match=r"target must have shape \(B, K, D\) = \(2, 3, 2\)"):
        head.loss(out, torch.zeros(2, 4, 2))
    with pytest.raises(ValueError, match="target_weight"):
        head.loss(out, torch.zeros(2, 3, 2), torch.ones(3, 2))
    with pytest.raises(ValueError, match="num_dims"):
        build(name, num_dims=4)
    with pytest.raises(ValueError, match="num_keypoints"):
        MODELS.build(dict(type=name, in_channels=16, num_keypoints=0))


def test_rle_head_flow_keeps_own_init_and_gets_gradients():
    head = build("RLEHead")
    lin = head.loss_module.flow.couplings[0].s[2]
    assert lin.weight.std().item() < 0.002  # not the head's N(0, 0.01) Linear init
    assert head.fc_coord.weight.std().item() > 0.005


def test_rle_head_3d_with_2d_flow():
    head = build("RLEHead", 3, loss_cfg=dict(use_2d_flow_for_2d_joints=True))
    out = head(torch.randn(2, 16, 4, 3))
    weight = torch.tensor([[[1.0, 1, 1], [1, 1, 0], [1, 1, 0]]] * 2)
    head.loss(out, torch.zeros(2, 3, 3), weight)["loss_rle"].backward()
    assert head.loss_module.flow_2d.couplings[0].t[0].weight.grad.abs().sum() > 0


def test_rle_head_normalised_coordinate_layer():
    head = build("RLEHead")
    feats = torch.rand(2, 16, 4, 3) + 0.1
    # scaling the features does not change mu: fc_coord acts on the L2-normalised feature
    torch.testing.assert_close(head(feats).coords, head(feats * 7.0).coords)
    zero = head(torch.zeros(2, 16, 4, 3))
    assert torch.isfinite(zero.coords).all()


def test_set_epoch_hook_calls_every_head():
    from rle.engine import SetEpochHook

    hook = SetEpochHook()
    sampling = build("SamplingArgmaxHead")
    hook.before_train_epoch(SimpleNamespace(model=SimpleNamespace(head=sampling), epoch=30))
    assert sampling.tau == 0.5
    for name in HEAD_NAMES:  # the base head's set_epoch is a no-op: nothing changes
        head = build(name)
        before = {k: v.clone() for k, v in head.state_dict().items()}
        wrapped = SimpleNamespace(module=SimpleNamespace(head=head))  # a DDP-style wrapper
        hook.before_train_epoch(SimpleNamespace(model=wrapped, epoch=0))
        assert all(torch.equal(v, head.state_dict()[k]) for k, v in before.items())
    hook.before_train_epoch(SimpleNamespace(model=SimpleNamespace(), epoch=0))  # no head


def test_sampling_head_schedule_and_test_time_soft_argmax():
    head = build("SamplingArgmaxHead")
    head.set_epoch(0)
    assert head.tau == 2.0
    head.set_epoch(30)
    assert head.tau == 0.5
    out = head(torch.randn(2, 16, 4, 3))
    from heads.functional import soft_argmax

    torch.testing.assert_close(out.coords, soft_argmax(out.logits))
    assert build("SamplingArgmaxHead", variant="textbook").variant == "textbook"
    with pytest.raises(ValueError, match="variant must be one of"):
        build("SamplingArgmaxHead", variant="concrete")


@pytest.mark.parametrize("name", ["RLEHead", "HeatmapRLEHead"])
def test_rle_heads_share_the_mixin(name):
    head = build(name)
    assert isinstance(head, heads.RLELossMixin) and head.has_sigma
    assert type(head).loss is heads.RLELossMixin.loss
    with pytest.raises(TypeError, match="loss_cfg"):
        build(name, loss_cfg=["laplace"])


def test_dsnt_head_regularisers():
    for reg in (None, "js", "kl", "variance"):
        head = build("DSNTHead", reg=reg)
        losses = head.loss(torch.randn(2, 16, 4, 3), torch.zeros(2, 3, 2))
        assert ("loss_reg" in losses) == (reg is not None)
    with pytest.raises(ValueError, match="reg"):
        build("DSNTHead", reg="l2")


def test_unknown_coordinate_loss():
    for name in ("RegressionHead", "SoftArgmaxHead"):
        with pytest.raises(ValueError, match="loss must be one of"):
            build(name, loss="huber")


# -- MMPose's integral grid and keypoint scores (grid="mmpose", keypoint_scores="one") -----------
HEATMAP_HEADS = [n for n in HEAD_NAMES if issubclass(MODELS.get(n), heads.HeatmapHead)]
INTEGRAL_HEADS = ["DSNTHead", "DebiasedIPRHead", "SamplingArgmaxHead", "SoftArgmaxHead"]
INPUT = (192, 256)  # (w, h) of the crop; a 32x24 map is stride 8
DELTA = (0.5 / 192 - 0.5 / 24, 0.5 / 256 - 0.5 / 32)  # -3.5 crop px per axis, normalised
INTEROP = Path(__file__).resolve().parents[2] / "shared" / "golden" / "interop"


def _with_logits(head, logits):
    """``head`` whose heatmap branch returns ``logits`` (whatever the features)."""
    head.heatmap_logits = lambda feats: logits
    return head.eval()


def _one_hot_logits(bins, size=(32, 24)):
    """Logits ``(1, K, H, W)`` whose softmax is exactly one-hot at ``bins`` ``[(j, i), ...]``."""
    logits = torch.zeros(1, len(bins), *size)
    for k, (j, i) in enumerate(bins):
        logits[0, k, i, j] = 1e4  # exp(-1e4) == 0: the other bins get exactly 0
    return logits


@pytest.mark.parametrize("name", HEATMAP_HEADS)
def test_mmpose_grid_shifts_the_coords_by_the_constant_delta(name):
    torch.manual_seed(0)
    center = build(name, deconv_channels=(8, 8, 8)).eval()
    mm = build(name, deconv_channels=(8, 8, 8), grid="mmpose", input_size=INPUT).eval()
    mm.load_state_dict(center.state_dict())
    assert center.grid == "center" and center.grid_offset(torch.zeros(1, 1, 32, 24)) is None
    assert (mm.grid, mm.input_size, mm.keypoint_scores) == ("mmpose", INPUT, "peak")
    feats = torch.randn(2, 16, 4, 3)
    with torch.no_grad():
        a, b = center(feats), mm(feats)
    assert b.heatmaps.shape == (2, 3, 32, 24) and torch.equal(a.heatmaps, b.heatmaps)
    offset = mm.grid_offset(b.heatmaps)
    assert offset.shape == (2,) and torch.equal(offset, torch.tensor(DELTA))
    assert torch.equal(b.coords, a.coords + offset)
    torch.testing.assert_close(b.coords - a.coords, torch.tensor(DELTA).expand(2, 3, 2))
    # the depth axis of a volumetric map is never shifted
    vol = build(name, 3, grid="mmpose", input_size=INPUT)
    torch.testing.assert_close(
        vol.grid_offset(torch.zeros(1, 1, 4, 32, 24)), torch.tensor([*DELTA, 0.0]), rtol=0, atol=0
    )


@pytest.mark.parametrize("name", INTEGRAL_HEADS)
def test_mmpose_grid_puts_bin_j_at_crop_px_j_times_stride(name):
    bins = [(0, 0), (23, 31), (5, 17), (12, 3)]
    head = _with_logits(build(name, grid="mmpose", input_size=INPUT), _one_hot_logits(bins))
    with torch.no_grad():
        out = head(None)
    px = torch.tensor([[j * 8.0, i * 8.0] for j, i in bins])  # MMPose: bin j at crop px j * stride
    expected = index_to_norm(px, torch.tensor([192.0, 256.0]))
    torch.testing.assert_close(out.coords[0], expected, rtol=0, atol=1e-6)
    crop = to_frame(out.coords[0], INPUT, "mmpose") * torch.tensor([192.0, 256.0])
    assert (crop - px).abs().max() < 1e-4
    # and the bin centre, (j + 0.5) * 8 - 0.5 crop px, on the default grid
    center = _with_logits(build(name), _one_hot_logits(bins))
    with torch.no_grad():
        ours = center(None).coords[0]
    torch.testing.assert_close(ours, index_to_norm(px + 3.5, torch.tensor([192.0, 256.0])))


@pytest.mark.skipif(not INTEROP.is_dir(), reason="shared golden interop absent")
@pytest.mark.parametrize(
    "name,head_type", [("ipr_res18n", "SoftArgmaxHead"), ("dsnt_res18n", "DSNTHead")]
)
def test_mmpose_grid_reproduces_mmpose_integral_heads(name, head_type):
    from rle.converters import from_mmpose

    ckpt = torch.load(INTEROP / f"mmpose_{name}.pth", map_location="cpu", weights_only=False)
    conv = from_mmpose(ckpt)
    cfg = copy.deepcopy(conv.model["head"])  # the head alone: the probe holds its input
    assert cfg["type"] == head_type
    cfg.update(in_channels=128, grid="mmpose", input_size=INPUT, keypoint_scores="one")
    head = MODELS.build(cfg)
    state = {k[len("head.") :]: v for k, v in conv.state_dict.items() if k.startswith("head.")}
    head.load_state_dict(state, strict=True)
    head.eval()
    probe = torch.load(INTEROP / f"expected_mmpose_{name}.pt", weights_only=True)["probe"]
    with torch.no_grad():
        pred = head.predict(probe["head_input"])
    scale = torch.tensor([192.0, 256.0])
    crop = to_frame(pred.coords, INPUT, "mmpose") * scale  # no manual offset
    err = (crop - probe["head_coords"] * scale).abs().max().item()
    assert err < 1e-4, f"{name}: max |d| = {err:.3g} crop px"
    assert torch.equal(pred.scores, torch.ones(4, 17))


def test_grid_and_keypoint_scores_errors():
    with pytest.raises(ValueError, match="input_size"):
        build("SoftArgmaxHead", grid="mmpose")
    with pytest.raises(ValueError, match=r"grid must be one of \('center', 'mmpose'\)"):
        build("DSNTHead", grid="corner", input_size=INPUT)
    with pytest.raises(ValueError, match=r"keypoint_scores must be one of \('peak', 'one'\)"):
        build("SoftArgmaxHead", keypoint_scores="max")
    for bad in ((192,), (192, 256, 3), (0, 256), (192, -1), (192.0, 256), (True, 256), "ab", 192):
        with pytest.raises(ValueError, match="input_size must be"):
            build("SoftArgmaxHead", grid="mmpose", input_size=bad)
    assert build("SoftArgmaxHead", input_size=[192, 256]).input_size == INPUT  # stored, unused


@pytest.mark.parametrize("name", HEATMAP_HEADS)
def test_keypoint_scores_one(name):
    torch.manual_seed(0)
    peak = build(name).eval()
    one = build(name, keypoint_scores="one").eval()
    one.load_state_dict(peak.state_dict())
    feats = torch.randn(2, 16, 4, 3)
    with torch.no_grad():
        a, b = peak.predict(feats), one.predict(feats)
    assert torch.equal(b.scores, torch.ones(2, 3)) and torch.equal(a.coords, b.coords)
    if not isinstance(peak, heads.RLELossMixin):  # HeatmapRLEHead keeps its RLE confidence
        assert torch.equal(a.scores, heatmap_confidence(peak(feats).heatmaps))
    assert not torch.equal(a.scores, b.scores)


@pytest.mark.parametrize("reg", ["js", "kl"])
def test_dsnt_regulariser_follows_the_grid(reg):
    bins = [(5, 17), (12, 3), (20, 30)]
    logits = _one_hot_logits(bins)  # one-hot: all the mass on bin (j, i)
    mm = _with_logits(build("DSNTHead", reg=reg, grid="mmpose", input_size=INPUT), logits)
    center = _with_logits(build("DSNTHead", reg=reg), logits)
    size = torch.tensor([192.0, 256.0])
    px = torch.tensor([[[j * 8.0, i * 8.0] for j, i in bins]])
    at_mmpose, at_centre = index_to_norm(px, size), index_to_norm(px + 3.5, size)
    mm_there, mm_ours = mm.loss(mm(None), at_mmpose), mm.loss(mm(None), at_centre)
    # the target Gaussian (sigma_t = 1 bin) sits on the bin when the target is MMPose's location
    # of it, 0.4375 bins off when it is the bin centre
    assert mm_there["loss_reg"] < 0.97 * mm_ours["loss_reg"]
    assert mm_there["loss_kpt"] < 1e-5 < mm_ours["loss_kpt"]
    # exact: the regulariser of the shifted head at the MMPose location is ours at the bin centre
    ref = center.loss(center(None), at_centre)
    torch.testing.assert_close(mm_there["loss_reg"], ref["loss_reg"])
    torch.testing.assert_close(mm_there["loss_kpt"], ref["loss_kpt"])


def test_sampling_argmax_samples_follow_the_grid():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 32, 24) * 3
    center = _with_logits(build("SamplingArgmaxHead"), logits)
    mm = _with_logits(build("SamplingArgmaxHead", grid="mmpose", input_size=INPUT), logits)
    target = torch.rand(2, 3, 2) * 0.6 - 0.3
    losses = []
    for head, t in ((center, target), (mm, target + torch.tensor(DELTA)), (mm, target)):
        head.generator = torch.Generator().manual_seed(0)  # the same samples each time
        losses.append(head.loss(head(None), t)["loss_kpt"])
    torch.testing.assert_close(losses[1], losses[0])
    assert (losses[2] - losses[0]).abs() > 1e-3


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    n=st.tuples(st.integers(1, 512), st.integers(1, 512)),
    beta=st.floats(0.1, 10.0),
)
def test_mmpose_grid_delta_is_constant_property(seed, h, w, n, beta):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 3, h, w, generator=gen, dtype=torch.float64) * 4
    delta = torch.tensor([0.5 / n[0] - 0.5 / w, 0.5 / n[1] - 0.5 / h], dtype=torch.float64)
    # MMPose's expectation written out: bin j at crop px j * n / m, in rle-pose's frame
    p = torch.softmax(logits.flatten(2) * beta, -1).view_as(logits)
    gx = index_to_norm(torch.arange(w, dtype=torch.float64) * n[0] / w, n[0])
    gy = index_to_norm(torch.arange(h, dtype=torch.float64) * n[1] / h, n[1])
    mm_expect = torch.stack([p.sum(-2) @ gx, p.sum(-1) @ gy], -1)
    for name in INTEGRAL_HEADS:
        center = _with_logits(build(name, beta=beta), logits)
        mm = _with_logits(build(name, beta=beta, grid="mmpose", input_size=n), logits)
        a, b = center(None).coords, mm(None).coords
        torch.testing.assert_close(b - a, delta.expand_as(a), rtol=0, atol=1e-12)
        if name != "DebiasedIPRHead":
            torch.testing.assert_close(b, mm_expect, rtol=0, atol=1e-12)
