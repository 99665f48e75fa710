"""RealNVP(scale="variance" | "median"): the flow's density standardised (unit variance, or a
unit Gaussian's median |x|), meant to let the 2-D RLE losses learn sigma on the scale of the
error (issue 14, the identifiable RLE scale)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rle.flow import RealNVP
from rle.losses import RLELoss


def _flow(scale="variance", seed=0, std=0.3):
    torch.manual_seed(seed)
    flow = RealNVP(2, scale=scale)
    with torch.no_grad():  # far from the near-identity start
        for p in flow.parameters():
            p.normal_(0.0, std)
    return flow


def test_the_fixed_base_points_map_to_exactly_the_pinned_scale():
    flow = _flow()
    with torch.no_grad():
        x, _ = flow.inverse(flow.scale_noise)
    torch.testing.assert_close(x.std(0), torch.ones(2), rtol=0, atol=1e-5)
    flow = _flow("median")
    with torch.no_grad():
        x, _ = flow.inverse(flow.scale_noise)
    target = torch.full((2,), 0.6744897501960817)
    torch.testing.assert_close(x.abs().median(0).values, target, rtol=0, atol=1e-5)
    # without the standardisation the same flow's spread is not 1: the check can fail
    raw = _flow("free")
    with torch.no_grad():
        assert (raw.inverse(flow.scale_noise)[0].std(0) - 1).abs().max() > 0.05


@pytest.mark.parametrize("scale", ["variance", "median"])
def test_the_density_integrates_to_one_and_matches_forward(scale):
    flow = _flow(scale)
    g = torch.linspace(-12, 12, 961)  # wide: a median-pinned flow can keep long tails
    grid = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    with torch.no_grad():
        total = float(flow.log_prob(grid).exp().sum() * (g[1] - g[0]) ** 2)
        z, logabsdet = flow(grid[:7])
        normal = -0.5 * (z**2).sum(1) - math.log(2 * math.pi)
        torch.testing.assert_close(flow.log_prob(grid[:7]), normal + logabsdet)
        x, inv_logabsdet = flow.inverse(z)
    assert abs(total - 1) < 2e-3
    torch.testing.assert_close(x, grid[:7], atol=1e-4, rtol=0)
    torch.testing.assert_close(inv_logabsdet, -logabsdet, atol=1e-4, rtol=0)


@settings(max_examples=20, deadline=None)
@given(
    a=st.floats(0.2, 5.0), seed=st.integers(0, 100), scale=st.sampled_from(["variance", "median"])
)
def test_a_scaled_flow_gives_the_same_standardised_density_property(a, seed, scale):
    """Scaling the raw flow's output by ``a`` (its last coupling's shift and log-scale) leaves
    the standardised density unchanged: the scale is no longer a free parameter."""
    flow = _flow(scale, seed=seed)
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        before = flow.log_prob(x)
        scaled = RealNVP(2, scale=scale)
        scaled.load_state_dict(flow.state_dict())
        raw = scaled._transform

        class _Scaled(torch.nn.Module):
            def inverse(self, z, context=None):
                y, ld = raw.inverse(z, context)
                return y * a, ld + 2 * math.log(a)

            def forward(self, y, context=None):
                out, ld = raw(y / a, context)
                return out, ld - 2 * math.log(a)

        scaled._transform = _Scaled()
        after = scaled.log_prob(x)
    torch.testing.assert_close(after, before, atol=1e-4, rtol=1e-4)


def test_free_is_the_reference_flow_and_the_state_dict_keys_are_shared():
    free, unit = RealNVP(2), RealNVP(2, scale="median")
    assert set(free.state_dict()) == set(unit.state_dict())  # checkpoints load either way
    unit.load_state_dict(free.state_dict())
    assert set(free.reference_state_dict()) == set(unit.reference_state_dict())
    x = torch.randn(5, 2)
    with torch.no_grad():
        torch.testing.assert_close(free.log_prob(x), RealNVP(2).log_prob(x))
    with pytest.raises(ValueError, match="scale"):
        RealNVP(2, scale="unit")
    with pytest.raises(ValueError, match="scale_samples"):
        RealNVP(2, scale="median", scale_samples=1)
    with pytest.raises(ValueError, match="unit_scale"):
        free.unit_scale()


@pytest.mark.parametrize("scale", ["variance", "median"])
def test_the_rle_loss_trains_through_the_standardisation(scale):
    loss = RLELoss(num_dims=2, flow_cfg=dict(scale=scale))
    gen = torch.Generator().manual_seed(0)
    pred = (torch.rand(4, 3, 2, generator=gen) - 0.5).requires_grad_()
    logits = torch.randn(4, 3, 2, generator=gen, requires_grad=True)
    out = loss(pred, logits, torch.rand(4, 3, 2, generator=gen) - 0.5)
    out.loss.backward()
    grads = [p.grad for p in loss.flow.parameters()]
    assert torch.isfinite(out.loss)
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(float(g.abs().max()) > 0 for g in grads)
    assert torch.isfinite(logits.grad).all() and float(logits.grad.abs().max()) > 0
