"""Every head's predictive density: the heatmap's spread and likelihood, the RLE density's
normaliser and likelihood (exact hand-built cases, closed forms, properties), and the estimator's
``pred_log_likelihood``."""

import functools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from mmengine.structures import BaseDataElement
from scipy.stats import norm

import heads
import heads.functional as HF
import heads.rle_mixin as rle_mixin
from heads import HeadOutput
from rle.evaluation import DumpPredictions
from rle.evaluation.functional import gaussian_log_density, keypoint_nll
from rle.models import TopdownPoseEstimator
from rle.registry import MODELS

TOL = dict(rtol=1e-12, atol=1e-14)
HEAD_NAMES = sorted(n for n, c in MODELS.module_dict.items() if issubclass(c, heads.BaseHead))
HEATMAP_HEADS = [n for n in HEAD_NAMES if issubclass(MODELS.get(n), heads.HeatmapHead)]
MAP_HEADS = [n for n in HEATMAP_HEADS if not issubclass(MODELS.get(n), heads.RLELossMixin)]
LEVELS = [0.5, 0.68, 0.95]


def build(name, num_dims=2, **kw):
    cfg = dict(dict(type=name, in_channels=16, num_keypoints=3, num_dims=num_dims), **kw)
    if issubclass(MODELS.get(name), heads.HeatmapHead):
        cfg = dict(dict(deconv_channels=(8,), depth_bins=4), **cfg)
    head = MODELS.build(cfg)
    head.init_weights()
    return head


def uniform(*spatial, dtype=torch.float64):
    n = math.prod(spatial)
    return torch.full((1, 1, *spatial), 1.0 / n, dtype=dtype)


def one_hot(spatial, index, dtype=torch.float64):
    maps = torch.zeros(1, 1, *spatial, dtype=dtype)
    maps[(0, 0, *index)] = 1.0
    return maps


def random_maps(data, spatial):
    seed = data.draw(st.integers(0, 2**31 - 1))
    scale = data.draw(st.floats(0.1, 5.0))
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 3, *spatial, generator=gen, dtype=torch.float64) * scale
    return HF.spatial_softmax(logits)


def full_grid(spatial):
    """Bin-centre coordinates ``(*spatial, D)`` of every bin, order (x, y[, z])."""
    axes = [(torch.arange(n, dtype=torch.float64) + 0.5) / n - 0.5 for n in spatial]
    mesh = torch.meshgrid(*axes, indexing="ij")  # in map order (Dz, H, W)
    return torch.stack(mesh[::-1], dim=-1)


# -- heatmap_variance -------------------------------------------------------------------------
@pytest.mark.parametrize("spatial", [(7,), (4, 6), (3, 4, 5)])
def test_variance_of_one_hot_is_zero_and_of_uniform_is_the_discrete_uniform(spatial):
    d = len(spatial)
    for index in [(0,) * d, tuple(n - 1 for n in spatial), tuple(n // 2 for n in spatial)]:
        var = HF.heatmap_variance(one_hot(spatial, index))
        assert var.shape == (1, 1, d) and torch.equal(var, torch.zeros(1, 1, d, dtype=var.dtype))
    # (n^2 - 1) / 12 bins^2, bins of width 1/n: (n^2 - 1) / (12 n^2) normalised^2, x first
    expected = [(n * n - 1) / (12 * n * n) for n in spatial[::-1]]
    expected = torch.tensor(expected, dtype=torch.float64).view(1, 1, d)
    torch.testing.assert_close(HF.heatmap_variance(uniform(*spatial)), expected, **TOL)


def test_variance_of_two_bins():
    # half the mass on the first and last bin of a row of 4: x at -0.375 and +0.375
    maps = torch.zeros(1, 1, 3, 4, dtype=torch.float64)
    maps[0, 0, 1, 0] = maps[0, 0, 1, 3] = 0.5
    torch.testing.assert_close(
        HF.heatmap_variance(maps), torch.tensor([[[0.375**2, 0.0]]], dtype=torch.float64), **TOL
    )
    # p and 1 - p on two neighbouring bins of n: the Bernoulli variance p (1 - p) / n^2
    maps = torch.zeros(1, 1, 2, 5, dtype=torch.float64)
    maps[0, 0, 0, 2], maps[0, 0, 1, 2] = 0.25, 0.75
    torch.testing.assert_close(
        HF.heatmap_variance(maps),
        torch.tensor([[[0.0, 0.25 * 0.75 / 4]]], dtype=torch.float64),
        **TOL,
    )


def test_variance_input_validation():
    with pytest.raises(TypeError, match="heatmaps must be a floating-point tensor"):
        HF.heatmap_variance(torch.ones(1, 1, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"heatmaps must have shape \(B, K, W\)"):
        HF.heatmap_variance(torch.ones(4))


@settings(max_examples=30, deadline=None)
@given(data=st.data(), spatial=st.sampled_from([(9,), (5, 7), (3, 4, 6)]))
def test_variance_property_matches_the_full_grid_moment(data, spatial):
    maps = random_maps(data, spatial)
    d = len(spatial)
    grid = full_grid(spatial)  # (*spatial, D)
    p = maps.unsqueeze(-1)  # (B, K, *spatial, 1)
    dims = tuple(range(2, 2 + d))
    mean = (p * grid).sum(dims)
    centred = grid - mean.view(*mean.shape[:2], *([1] * d), d)
    expected = (p * centred**2).sum(dims)
    var = HF.heatmap_variance(maps)
    torch.testing.assert_close(var, expected, rtol=1e-10, atol=1e-13)
    # never negative, and at most the variance of half the mass on each end of the axis
    bound = torch.tensor([(0.5 - 0.5 / n) ** 2 for n in spatial[::-1]], dtype=var.dtype)
    assert (var >= 0).all() and (var <= bound + 1e-15).all()


# -- heatmap_log_likelihood -------------------------------------------------------------------
def test_log_likelihood_of_a_hand_built_map():
    probs = torch.tensor([[0.1, 0.2, 0.3, 0.0], [0.05, 0.15, 0.1, 0.1]], dtype=torch.float64)
    maps = probs.view(1, 1, 2, 4)
    # bin (x=2, y=0) spans x in [0, 0.25), y in [-0.5, 0): its centre, a corner, an inner point
    for point in [(0.125, -0.25), (0.0, -0.5), (0.2499, -0.01)]:
        target = torch.tensor([[point]], dtype=torch.float64)
        ll = HF.heatmap_log_likelihood(maps, target)
        # probability 0.3 over the bin's area 1/8 of the normalised crop
        torch.testing.assert_close(ll, torch.tensor([[math.log(0.3 * 8)]], dtype=ll.dtype), **TOL)
    # the far edges (x = 0.5, y = 0.5) belong to the last bins
    ll = HF.heatmap_log_likelihood(maps, torch.tensor([[[0.5, 0.5]]], dtype=torch.float64))
    torch.testing.assert_close(ll, torch.tensor([[math.log(0.1 * 8)]], dtype=ll.dtype), **TOL)
    # an empty bin, a target off the map and a NaN target: the documented floor
    floor = math.log(1e-12 * 8)
    for point in [(0.375, -0.25), (0.51, 0.0), (0.0, -0.7), (float("nan"), 0.0)]:
        ll = HF.heatmap_log_likelihood(maps, torch.tensor([[point]], dtype=torch.float64))
        torch.testing.assert_close(ll, torch.tensor([[floor]], dtype=ll.dtype), **TOL)
    ll = HF.heatmap_log_likelihood(maps, torch.tensor([[[9.0, 0.0]]]).double(), min_prob=1e-6)
    expected = torch.tensor([[math.log(1e-6 * 8)]], dtype=torch.float64)
    torch.testing.assert_close(ll, expected, **TOL)


def test_log_likelihood_3d_and_offset():
    maps = torch.zeros(1, 1, 2, 3, 4, dtype=torch.float64)
    maps[0, 0, 1, 2, 0] = 0.7  # z bin 1, y bin 2, x bin 0
    maps[0, 0, 0, 0, 3] = 0.3
    target = torch.tensor([[[-0.4, 0.4, 0.2]]], dtype=torch.float64)
    ll = HF.heatmap_log_likelihood(maps, target)
    torch.testing.assert_close(ll, torch.tensor([[math.log(0.7 * 24)]], dtype=ll.dtype), **TOL)
    # a grid offset moves the bins: the target moved with it scores the same
    offset = torch.tensor([0.01, -0.02, 0.0], dtype=torch.float64)
    torch.testing.assert_close(HF.heatmap_log_likelihood(maps, target + offset, offset=offset), ll)
    with pytest.raises(ValueError, match=r"target must have shape \(B, K, D\) = \(1, 1, 3\)"):
        HF.heatmap_log_likelihood(maps, target[..., :2])
    with pytest.raises(ValueError, match="offset must be a tensor of shape"):
        HF.heatmap_log_likelihood(maps, target, offset=offset[:2])
    with pytest.raises(ValueError, match="min_prob must be"):
        HF.heatmap_log_likelihood(maps, target, min_prob=0.0)


@settings(max_examples=30, deadline=None)
@given(data=st.data(), spatial=st.sampled_from([(9,), (5, 7), (3, 4, 6)]))
def test_log_likelihood_property_is_the_bin_density(data, spatial):
    maps = random_maps(data, spatial)
    d = len(spatial)
    volume = 1.0 / math.prod(spatial)
    # every point of a bin (centre + a uniform jitter inside it) scores its probability / volume
    jitter = data.draw(st.floats(-0.49, 0.49))
    widths = torch.tensor([1.0 / n for n in spatial[::-1]], dtype=torch.float64)
    grid = full_grid(spatial).reshape(-1, d) + jitter * widths  # (N, D) one point per bin
    b, k = maps.shape[:2]
    target = grid.expand(b * k, *grid.shape).reshape(b, k * grid.shape[0], d)
    flat = maps.flatten(2)  # (B, K, N): the map order matches full_grid's
    rep = maps.repeat_interleave(grid.shape[0], dim=1)  # map k for every point of map k
    ll = HF.heatmap_log_likelihood(rep, target).view(b, k, -1)
    # atol: where a bin's density is ~1 its log is ~0 and a relative bound is meaningless
    # (float64 rounding of ~4e-16 on a log of 3e-6 once failed rtol alone)
    torch.testing.assert_close(ll, (flat.clamp_min(1e-12) / volume).log(), rtol=1e-10, atol=1e-14)
    # the density integrates to 1 over the map
    torch.testing.assert_close((ll.exp() * volume).sum(-1), torch.ones(b, k).double())


# -- the RLE density ---------------------------------------------------------------------------
def identity_rle(num_dims=2, **loss_cfg):
    head = build("RLEHead", num_dims=num_dims, loss_cfg=loss_cfg)
    for p in head.loss_module.flow.parameters():
        torch.nn.init.zeros_(p)  # s = t = 0: the identity flow, phi = N(0, I)
    return head.eval()


def simpson(half, n):
    """Composite Simpson nodes and weights ``(n,)`` on ``[-half, half]`` (n odd): 0 is a panel
    edge, where the Laplace Q term has its kink. Another rule than the normaliser's."""
    axis = torch.linspace(-half, half, n, dtype=torch.float64)
    weights = torch.ones(n, dtype=torch.float64)
    weights[1:-1:2], weights[2:-1:2] = 4.0, 2.0
    return axis, weights * (axis[1] - axis[0]) / 3


def rle_output(mu, sigma):
    logits = torch.logit(torch.as_tensor(sigma, dtype=mu.dtype)).expand_as(mu)
    return HeadOutput(coords=mu, sigma=torch.sigmoid(logits), sigma_logits=logits)


# (loss config, D) -> the per-coordinate variance v of the normal the density is, with the
# identity flow: phi^m exp(-u^2 / 2) with m log phi counted once (paper) or D times
CLOSED_FORMS = [
    (dict(variant="paper", residual=False), 2, 1.0),  # phi itself
    (dict(variant="paper", q="gaussian"), 2, 1 / 2),  # N(0,1) N(0,1)
    (dict(variant="mmpose", q="gaussian"), 2, 1 / 3),  # N(0,1)^2 N(0,1)
    (dict(variant="official", q="gaussian", residual=False), 2, 1 / 2),  # N(0,1)^2
    (dict(variant="mmpose", q="gaussian"), 3, 1 / 4),  # N(0,1)^3 N(0,1)
    (dict(variant="paper", residual=False), 3, 1.0),
]


@pytest.mark.parametrize("loss_cfg, d, v", CLOSED_FORMS)
def test_rle_log_likelihood_of_an_identity_flow_is_the_closed_form_normal(loss_cfg, d, v):
    head = identity_rle(d, **loss_cfg)
    gen = torch.Generator().manual_seed(0)
    mu = torch.rand(4, 3, d, generator=gen) - 0.5
    target = mu + 0.1 * torch.randn(4, 3, d, generator=gen)
    sigma = torch.tensor([0.05, 0.08, 0.11][:d])
    with torch.no_grad():
        ll = head.log_likelihood(rle_output(mu, sigma), target)
    s = sigma.double() + (1e-9 if loss_cfg["variant"] == "mmpose" else 0.0)
    u = (mu.double() - target.double()) / s
    # the normal N(0, v) of u, over sigma per axis
    expected = (-0.5 * math.log(2 * math.pi * v) - u**2 / (2 * v)).sum(-1) - s.log().sum()
    assert ll.shape == (4, 3) and ll.dtype == torch.float32
    # the quadrature of the normaliser: ~1e-6 in 2-D, ~2e-5 in 3-D (4 nodes per panel)
    torch.testing.assert_close(ll.double(), expected, rtol=0, atol=2e-5 if d == 2 else 1e-4)
    if v == 1.0:  # the standard normal residual: keypoint_nll "gaussian" is its negative
        nll = keypoint_nll(mu.numpy(), target.numpy(), s.expand(4, 3, d).numpy(), None,
                           "gaussian", reduction="none")  # fmt: skip
        np.testing.assert_allclose(-ll.numpy(), nll, atol=2e-5)
        np.testing.assert_allclose(
            ll.numpy(), gaussian_log_density(u.numpy()).sum(-1) - np.log(s.numpy()).sum(),
            atol=2e-5,
        )  # fmt: skip


def test_rle_official_laplace_normaliser_closed_form():
    # phi^2 exp(-|u| / sqrt2) per coordinate: int exp(-u^2 - a|u|) du = sqrt(pi) e^(a^2/4) erfc(a/2)
    a = 1 / math.sqrt(2)
    one = math.log(math.sqrt(math.pi) * math.exp(a * a / 4) * math.erfc(a / 2))
    expected = 2 * (one - math.log(2 * math.pi))  # phi^2 = (2 pi)^-2 exp(-|u|^2) in 2-D
    head = identity_rle(2, variant="official")
    assert abs(head.log_normaliser() - expected) < 1e-6


@pytest.mark.parametrize(
    "loss_cfg",
    [dict(variant="official"), dict(variant="mmpose", q="gaussian"), dict(variant="paper")],
)
def test_rle_density_of_a_random_flow_integrates_to_one(loss_cfg):
    torch.manual_seed(3)
    head = build("RLEHead", loss_cfg=dict(loss_cfg, flow_cfg=dict(init="torch_default"))).eval()
    sigma = torch.tensor([0.03, 0.05])
    # the residual lives within 4x the flow's 99.9 % quantile (where the normaliser looks)
    with torch.no_grad():
        samples, _ = head.loss_module.flow.inverse(torch.randn(20000, 2))
    half = 4 * float(samples.abs().quantile(0.999))
    axis, weights = simpson(half, 301)
    u = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 1, 2)
    mu = torch.full((1, 1, 2), 0.1)
    target = (mu - u * sigma).float()  # (N, 1, 2): every target of the grid, K = 1
    with torch.no_grad():
        ll = head.log_likelihood(rle_output(mu.expand(len(u), 1, 2), sigma), target)
    assert torch.isfinite(ll).all()
    # the weights are in u: the density of the target is per sigma_x sigma_y of u's area
    cell = torch.outer(weights, weights).reshape(-1, 1) * sigma.double().prod()
    total = float((ll.double().exp() * cell).sum())
    assert abs(total - 1) < 1e-3, total


def test_rle_3d_density_integrates_to_one():
    torch.manual_seed(4)
    cfg = dict(variant="mmpose", q="gaussian", flow_cfg=dict(init="torch_default"))
    head = build("RLEHead", num_dims=3, loss_cfg=cfg).eval()
    sigma = torch.tensor([0.05, 0.04, 0.06])
    axis, weights = simpson(4.0, 49)  # phi^3 exp(-u^2/2): narrow enough for +-4 sigma
    u = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 1, 3)
    mu = torch.zeros(1, 1, 3)
    with torch.no_grad():
        ll = head.log_likelihood(rle_output(mu.expand(len(u), 1, 3), sigma), (-u * sigma).float())
    cell = torch.einsum("i,j,k->ijk", weights, weights, weights).reshape(-1, 1)
    total = float((ll.double().exp() * cell * sigma.double().prod()).sum())
    assert abs(total - 1) < 1e-3, total


def test_rle_normaliser_is_cached_until_the_flow_changes(monkeypatch):
    head = build("RLEHead").eval()
    calls = []
    real = rle_mixin.residual_log_normaliser

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(rle_mixin, "residual_log_normaliser", counting)
    feats, target = torch.randn(2, 16, 4, 3), torch.zeros(2, 3, 2)
    first = head.log_likelihood(feats, target)
    assert torch.equal(head.log_likelihood(feats, target), first) and len(calls) == 1
    param = next(head.loss_module.flow.parameters())
    with torch.no_grad():
        param.add_(0.1)  # an optimiser step
    head.log_likelihood(feats, target)
    assert len(calls) == 2
    param.data.mul_(1.5)  # through .data: no version bump, still seen
    head.log_likelihood(feats, target)
    assert len(calls) == 3
    head.log_likelihood(feats, target)
    assert len(calls) == 3
    head.loss_module.q = "gaussian"
    head.log_likelihood(feats, target)
    assert len(calls) == 4


@settings(max_examples=20, deadline=None)
@given(
    shift=st.floats(-0.3, 0.3),
    scale=st.floats(0.2, 5.0),
    seed=st.integers(0, 2**31 - 1),
)
def test_rle_log_likelihood_property_change_of_variables(shift, scale, seed):
    # a location-scale family: moving mu and target together changes nothing, scaling sigma and
    # the residual by a divides the density by a^D
    head = random_rle()
    gen = torch.Generator().manual_seed(seed)
    mu = (torch.rand(2, 3, 2, generator=gen) - 0.5).double()
    sigma = (0.02 + 0.1 * torch.rand(2, generator=gen)).double()
    target = mu + sigma * torch.randn(2, 3, 2, generator=gen).double()
    ll = head.log_likelihood(rle_output(mu, sigma), target)
    moved = head.log_likelihood(rle_output(mu + shift, sigma), target + shift)
    torch.testing.assert_close(moved, ll, rtol=0, atol=1e-6)
    scaled_sigma = sigma * scale
    if (scaled_sigma < 0.999).all():
        scaled = head.log_likelihood(
            rle_output(mu, scaled_sigma), mu + (target - mu) * scale
        )  # fmt: skip
        torch.testing.assert_close(scaled, ll - 2 * math.log(scale), rtol=0, atol=1e-6)


@functools.cache
def random_rle():
    """An RLE head with a random (PyTorch default) flow, built once: its normaliser is cached."""
    with torch.random.fork_rng():
        torch.manual_seed(5)
        return build("RLEHead", loss_cfg=dict(flow_cfg=dict(init="torch_default"))).eval()


# -- every head --------------------------------------------------------------------------------
@pytest.mark.parametrize("num_dims", [2, 3])
@pytest.mark.parametrize("name", HEAD_NAMES)
def test_every_head_log_likelihood(name, num_dims):
    torch.manual_seed(0)
    head = build(name, num_dims).eval()
    feats = torch.randn(2, 16, 4, 3)
    target = torch.rand(2, 3, num_dims) - 0.5
    target[1, 2] = 3.0  # off the crop: finite too (the heatmap floor)
    with torch.no_grad():
        out = head(feats)
        ll = head.log_likelihood(out, target)
    if name == "RegressionHead":
        assert ll is None and head.interval_scale(LEVELS) is None
        assert head.predict(out).sigma is None and not head.has_sigma
    else:
        assert ll.shape == (2, 3) and torch.isfinite(ll).all()
        with torch.no_grad():
            torch.testing.assert_close(head.log_likelihood(feats, target), ll)
    with pytest.raises(ValueError, match=r"target must have shape \(B, K, D\)"):
        head.log_likelihood(out, target[:, :2])
    with pytest.raises(TypeError, match="target must be a torch.Tensor"):
        head.log_likelihood(out, target.tolist())


@pytest.mark.parametrize("num_dims", [2, 3])
@pytest.mark.parametrize("name", MAP_HEADS)
def test_heatmap_heads_predict_the_spread_of_the_map(name, num_dims):
    torch.manual_seed(0)
    head = build(name, num_dims).eval()
    with torch.no_grad():
        out = head(torch.randn(2, 16, 4, 3))
        pred = head.predict(out)
    assert head.has_sigma and out.sigma is None  # HeadOutput.sigma stays RLE's
    assert pred.sigma.shape == (2, 3, num_dims) and (pred.sigma >= 0).all()
    if name != "SamplingArgmaxHead":  # its basis adds to the map's variance
        torch.testing.assert_close(pred.sigma, HF.heatmap_variance(out.heatmaps).sqrt())
    else:
        assert (pred.sigma >= HF.heatmap_variance(out.heatmaps).sqrt() - 1e-7).all()
    scale = head.interval_scale(LEVELS)
    assert set(scale) == set(LEVELS)
    if name != "SamplingArgmaxHead":
        for level in LEVELS:
            assert scale[level] == pytest.approx(norm.ppf((1 + level) / 2), abs=1e-12)


@pytest.mark.parametrize("name", ["SoftArgmaxHead", "DSNTHead", "DebiasedIPRHead"])
def test_heatmap_head_exact_sigma_and_likelihood_on_the_mmpose_grid(name):
    input_size = (48, 64)  # a 6x8 map: stride 8
    logits = torch.full((1, 2, 8, 6), -1e4)
    logits[0, 0, 3, 2] = 0.0  # one-hot at x bin 2, y bin 3
    logits[0, 1, :, 1] = 0.0  # uniform over the 8 rows of x bin 1
    center = build(name, num_keypoints=2)
    mm = build(name, num_keypoints=2, grid="mmpose", input_size=input_size)
    for head in (center, mm):
        head.heatmap_logits = lambda feats: logits
        head.eval()
    with torch.no_grad():
        a, b = center.predict(None), mm.predict(None)
        out_c, out_m = center(None), mm(None)
    expected = torch.tensor([[[0.0, 0.0], [0.0, (64 - 1) / (12 * 64)]]]).sqrt()
    torch.testing.assert_close(a.sigma, expected, rtol=1e-6, atol=1e-7)
    assert torch.equal(a.sigma, b.sigma)  # the grid is a constant shift: the spread is the same
    # the target at the decoded bin centre: one-hot 1 / (1/48 area), uniform 1/8 / (1/48)
    offset = mm.grid_offset(out_m.heatmaps)
    for head, out, shift in ((center, out_c, 0.0), (mm, out_m, offset)):
        target = torch.tensor([[[2.5 / 6 - 0.5, 3.5 / 8 - 0.5], [1.5 / 6 - 0.5, 0.3]]]) + shift
        ll = head.log_likelihood(out, target)
        torch.testing.assert_close(ll, torch.tensor([[math.log(48.0), math.log(6.0)]]))
    # the mmpose head's bins are shifted by -3.5 crop px: the centre of its bin (2, 3) less
    # 0.6 of a bin in x is in bin 1 of its grid, an empty one: the floor
    target = torch.tensor([[[2.5 / 6 - 0.5 - 0.6 / 6, 3.5 / 8 - 0.5], [0.0, 0.0]]]) + offset
    ll = mm.log_likelihood(out_m, target)
    assert ll[0, 0] == pytest.approx(math.log(1e-12 * 48), abs=1e-4)


# -- the estimator ------------------------------------------------------------------------------
class _Tiny(torch.nn.Module):
    """(B, 3, 32, 24) -> one (B, 16, 4, 3) feature map."""

    out_channels = [16]

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 16, 1)

    def forward(self, x):
        return (self.conv(torch.nn.functional.avg_pool2d(x, 8)),)


def _samples(num, num_dims=2, labels=True, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(num):
        s = BaseDataElement(
            metainfo=dict(
                input_size=(24, 32),
                input_center=np.array([50.0, 40.0]),
                input_scale=np.array([60.0, 80.0]),
                flip_indices=[0, 2, 1],
            )
        )
        if labels:
            s.keypoint_labels = (rng.random((3, num_dims)) - 0.5).astype(np.float32)
            s.keypoint_weights = np.array([1.0, 1.0, 0.0], dtype=np.float32)
        out.append(s)
    return out


@pytest.mark.parametrize(
    "name, num_dims",
    [("RLEHead", 2), ("HeatmapRLEHead", 2), ("SoftArgmaxHead", 2), ("RLEHead", 3),
     ("DSNTHead", 3), ("RegressionHead", 2)],
)  # fmt: skip
def test_estimator_writes_pred_log_likelihood(name, num_dims, tmp_path):
    torch.manual_seed(0)
    model = TopdownPoseEstimator(_Tiny(), build(name, num_dims)).eval()
    inputs = torch.randn(2, 3, 32, 24)
    samples = model.predict(inputs, _samples(2, num_dims))
    head = model.head
    if name == "RegressionHead":
        assert all("pred_log_likelihood" not in s for s in samples)
        return
    with torch.no_grad():
        target = torch.stack([torch.as_tensor(s.keypoint_labels) for s in samples])
        expected = head.log_likelihood(head(model.extract_feat(inputs)), target).numpy()
    for s, want in zip(samples, expected):
        assert s.pred_log_likelihood.shape == (3,) and s.pred_log_likelihood.dtype == np.float32
        np.testing.assert_allclose(s.pred_log_likelihood, want, rtol=1e-6)
    # the flip test scores the un-flipped pass
    flip = TopdownPoseEstimator(_Tiny(), head, test_cfg=dict(flip_test=True)).eval()
    flip.backbone = model.backbone
    flipped = flip.predict(inputs, _samples(2, num_dims))
    for s, want in zip(flipped, expected):
        np.testing.assert_allclose(s.pred_log_likelihood, want, rtol=1e-6)
    # test samples without labels get no score
    assert all("pred_log_likelihood" not in s for s in model.predict(inputs, _samples(2, 2, False)))
    # the dump keeps it
    dump = DumpPredictions(str(tmp_path / "p.pkl"))
    dump.process(None, samples)
    np.testing.assert_array_equal(dump.results[0]["pred_log_likelihood"], expected[0])
    np.testing.assert_array_equal(dump.results[0]["keypoint_weights"], [1.0, 1.0, 0.0])


def test_estimator_refuses_labels_of_another_dimension():
    model = TopdownPoseEstimator(_Tiny(), build("RLEHead", 3)).eval()
    with pytest.raises(ValueError, match=r"keypoint_labels must be \(K, D\) = \(3, 3\)"):
        model.predict(torch.randn(1, 3, 32, 24), _samples(1, num_dims=2))


def test_rle_normaliser_resolves_a_spike_in_wide_tails():
    """``Z = int phi(u)^2 exp(-|u|^2 / 2) du`` (mmpose, Gaussian Q) of a spike-in-tails mixture
    ``phi = sum_a w_a N(0, s_a^2 I)``: sum over pairs of ``w_a w_b / (2 pi s_a^2 s_b^2
    (1/s_a^2 + 1/s_b^2 + 1))``. Six fixed panels would leave the spike inside the inner one."""
    from tests.conftest import SpikyFlow

    parts = [(0.97, 0.002), (0.03, 1.0)]
    z = sum(
        wa * wb / (2 * math.pi * sa**2 * sb**2 * (1 / sa**2 + 1 / sb**2 + 1))
        for wa, sa in parts
        for wb, sb in parts
    )
    got = rle_mixin.residual_log_normaliser(SpikyFlow(0.97, 0.002), variant="mmpose", q="gaussian")
    assert abs(got - math.log(z)) < 1e-3
