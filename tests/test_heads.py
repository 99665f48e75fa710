"""One contract test over every registered head, plus head-specific checks."""

from types import SimpleNamespace

import pytest
import torch

import heads
from heads import HeadOutput, Prediction
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
    if head.has_sigma:
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

    def step():
        out = head(feats)
        losses = head.loss(out, target)
        error = (out.coords - target).abs().mean().item()
        log_sigma = out.sigma.log().mean().item() if head.has_sigma else None
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
        if not head.has_sigma:
            # distances and divergences: a flipped sign would "fall" below zero
            assert min(a, b) >= 0, f"{name} {num_dims}-D: {key} {a:.4f} -> {b:.4f} < 0"
    assert last_error < 0.7 * first_error, (
        f"{name} {num_dims}-D: mean |coords - target| {first_error:.4f} -> {last_error:.4f}"
    )
    if head.has_sigma:
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
