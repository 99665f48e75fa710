"""Sampling-argmax with learned basis widths, and the predictive mixture its basis defines:
exact hand-built cases (dsntnn style, fixed noise), gradchecks, properties, and the head
contract with ``learn_width``."""

import functools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from heads import HeadOutput
from heads.functional import heatmap_expectation, spatial_softmax
from heads.functional.sampling import (
    FIXED_WIDTHS,
    basis_variance,
    mixture_log_likelihood,
    mixture_variance,
    sampling_argmax,
)
from rle.coords import index_to_norm, norm_to_index
from tests import test_heads

DT = torch.float64
BASES = ("uniform", "triangular", "gaussian")
INF = math.inf


def _noise(shape, num_samples, basis, gen, dtype=DT):
    """Injected noise for maps ``(B, K, *spatial)``: what ``sampling_argmax`` draws."""
    b, k, *spatial = shape
    d = len(spatial)
    noise = {"gumbel_u": torch.rand(b, k, num_samples, math.prod(spatial), generator=gen)}
    for axis, n in zip("xyz", reversed(spatial)):
        if basis == "gaussian":
            noise[f"z_{axis}"] = torch.randn(b, k, num_samples, n, generator=gen)
        else:
            noise[f"u_{axis}"] = torch.rand(b, k, num_samples, n, generator=gen)
    assert len(noise) == d + 1
    return {key: v.to(dtype) for key, v in noise.items()}


def _one_hot_logits(shape, bins):
    """Logits ``(1, K, *spatial)`` whose softmax (and every Gumbel-softmax sample) is exactly
    one-hot at ``bins[k]`` (index tuples in map order): the other bins are ``-inf``."""
    logits = torch.full(shape, -INF, dtype=DT)
    for k, where in enumerate(bins):
        logits[(0, k, *where)] = 0.0
    return logits


# -- sampling: the fixed basis's width is the fixed basis, bit for bit -----------------------------
@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize(
    "basis,reweight",
    [("uniform", None), ("triangular", None), ("gaussian", True), ("gaussian", False)],
)
def test_fixed_width_gives_the_fixed_samples_bit_for_bit(dims, basis, reweight):
    gen = torch.Generator().manual_seed(dims)
    logits = torch.randn((2, 3) + (5,) * dims, generator=gen, dtype=DT) * 2
    w0 = FIXED_WIDTHS[basis]
    # powers of two: the per-location quotient marginal(q * w) / marginal(q) is exact too
    widths = (w0, torch.full((3,), w0, dtype=DT), torch.full_like(logits, w0))
    kw = dict(gaussian_reweight=reweight)
    noise = _noise(logits.shape, 4, basis, gen)
    fixed = sampling_argmax(logits, 0.7, 4, basis, noise=noise, **kw)
    for width in widths:
        got = sampling_argmax(logits, 0.7, 4, basis, noise=noise, basis_width=width, **kw)
        assert torch.equal(got, fixed)
    # drawn noise, whole and chunked (checkpointed)
    for chunk in (None, 3):
        run = functools.partial(sampling_argmax, logits, 0.7, 7, basis, chunk_size=chunk, **kw)
        fixed = run(generator=torch.Generator().manual_seed(5))
        for width in widths:
            got = run(generator=torch.Generator().manual_seed(5), basis_width=width)
            assert torch.equal(got, fixed), (chunk, width)


# -- sampling: exact hand-built cases --------------------------------------------------------------
# one bin: the sample is w * eps exactly. Dyadic noise: uniform u = 0.75 -> eps = 2u - 1 = 0.5;
# triangular u = 0.125 -> eps = sqrt(2u) - 1 = -0.5; gaussian z = 1.5
ONE_BIN = {
    "uniform": ("u", 0.75, 0.5),
    "triangular": ("u", 0.125, -0.5),
    "gaussian": ("z", 1.5, 1.5),
}


@pytest.mark.parametrize("basis", BASES)
@pytest.mark.parametrize("dims", [1, 2])
def test_one_bin_sample_and_width_gradient_are_exact(basis, dims):
    prefix, value, eps = ONE_BIN[basis]
    shape = (1, 1) + (1,) * dims
    noise = {"gumbel_u": torch.full((1, 1, 1, 1), 0.5, dtype=DT)}
    for axis in "xyz"[:dims]:
        noise[f"{prefix}_{axis}"] = torch.full((1, 1, 1, 1), value, dtype=DT)
    for width in (0.75, 1.0, 2.5):
        w = torch.tensor([width], dtype=DT, requires_grad=True)
        logits = torch.zeros(shape, dtype=DT, requires_grad=True)
        out = sampling_argmax(logits, 1.0, 1, basis, noise=noise, basis_width=w)
        # one bin of n = 1: index i is the normalised (i + 0.5) / 1 - 0.5 = i, exactly
        assert torch.equal(out, torch.full((1, 1, 1, dims), width * eps, dtype=DT))
        out.sum().backward()
        assert w.grad.item() == dims * eps  # d sample / d w = eps per axis
        assert logits.grad.abs().max() == 0  # one bin: the map has no say


def test_two_bin_triangular_by_hand():
    # a one-hot marginal [1, 0]; jitter eps_0 = 0.5 (u = 0.875), eps_1 = -0.75 (u = 1/32):
    # positions 0.5 and 0.25, interpolated weights 0.5 and 0.75 (Z = 1.25), all of it from bin 0
    # at offsets 0.5 and 0.25: the fixed sample is (0.25 + 0.1875) / 1.25 = 0.35 bins, and
    # width w scales the offsets about bin 0: 0.35 w bins
    logits = torch.tensor([[[0.0, -INF]]], dtype=DT)
    u = torch.tensor([[[[0.875, 0.03125]]]], dtype=DT)
    noise = {"gumbel_u": torch.full((1, 1, 1, 2), 0.5, dtype=DT), "u_x": u}
    fixed = sampling_argmax(logits, 1.0, 1, "tri", noise=noise)
    torch.testing.assert_close(
        fixed, torch.tensor([[[[index_to_norm(0.35, 2)]]]], dtype=DT), rtol=0, atol=1e-15
    )
    for width in (0.5, 1.0, 2.0, 3.0):
        w = torch.tensor([width], dtype=DT, requires_grad=True)
        out = sampling_argmax(logits, 1.0, 1, "tri", noise=noise, basis_width=w)
        expected = torch.tensor([[[[index_to_norm(0.35 * width, 2)]]]], dtype=DT)
        torch.testing.assert_close(out, expected, rtol=0, atol=1e-15)
        out.sum().backward()
        torch.testing.assert_close(w.grad, torch.tensor([0.35 / 2], dtype=DT), rtol=0, atol=1e-15)
    w1 = sampling_argmax(logits, 1.0, 1, "tri", noise=noise, basis_width=torch.ones(1, dtype=DT))
    assert torch.equal(w1, fixed)


def test_per_location_width_is_the_sampled_locations():
    # a one-hot 1x2 map at x bin 0, widths [0.75, 3]: every axis jitters by the width of bin 0
    logits = torch.tensor([[[[0.0, -INF]]]], dtype=DT)
    width = torch.tensor([[[[0.75, 3.0]]]], dtype=DT, requires_grad=True)
    noise = {
        "gumbel_u": torch.full((1, 1, 1, 2), 0.5, dtype=DT),
        "u_x": torch.full((1, 1, 1, 2), 0.75, dtype=DT),  # eps = 0.5
        "u_y": torch.full((1, 1, 1, 1), 0.75, dtype=DT),
    }
    out = sampling_argmax(logits, 1.0, 1, "uniform", noise=noise, basis_width=width)
    # x: 0 + 0.75 * 0.5 bins of 2 -> (0.375 + 0.5) / 2 - 0.5; y: 0.375 bins of 1
    assert torch.equal(out, torch.tensor([[[[-0.0625, 0.375]]]], dtype=DT))
    out.sum().backward()
    assert torch.equal(width.grad, torch.tensor([[[[0.5 / 2 + 0.5, 0.0]]]], dtype=DT))


# -- sampling: gradients and properties ------------------------------------------------------------
@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("basis", BASES)
def test_gradcheck_logits_and_width(dims, basis):
    gen = torch.Generator().manual_seed(10 * dims)
    shape = (1, 2) + (3,) * dims
    x = torch.randn(shape, generator=gen, dtype=DT, requires_grad=True)
    noise = _noise(shape, 3, basis, gen)
    per_keypoint = (torch.rand(2, generator=gen, dtype=DT) + 0.5).requires_grad_()
    per_location = (torch.rand(shape, generator=gen, dtype=DT) + 0.5).requires_grad_()
    for width in (per_keypoint, per_location):
        for reweight in (True, False) if basis == "gaussian" else (None,):
            fn = functools.partial(
                sampling_argmax,
                tau=0.8,
                num_samples=3,
                basis=basis,
                noise=noise,
                gaussian_reweight=reweight,
            )
            assert torch.autograd.gradcheck(lambda t, w: fn(t, basis_width=w), (x, width))  # noqa: B023


def test_gradcheck_chunked_width():
    x = torch.randn(1, 2, 4, 3, dtype=DT, requires_grad=True)
    width = torch.tensor([0.7, 1.6], dtype=DT, requires_grad=True)

    def fn(t, w):  # the generator made afresh: every evaluation draws the same chunks
        gen = torch.Generator().manual_seed(0)
        return sampling_argmax(t, 1.0, 5, "tri", chunk_size=2, generator=gen, basis_width=w)

    assert torch.autograd.gradcheck(fn, (x, width))


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    size=st.tuples(st.integers(1, 9), st.integers(1, 9)),
    width=st.lists(st.floats(0.05, 6.0), min_size=2, max_size=2),
    basis=st.sampled_from(["uniform", "triangular"]),
)
def test_one_hot_samples_stay_within_a_width_of_the_bin(seed, size, width, basis):
    gen = torch.Generator().manual_seed(seed)
    h, w = size
    bins = [
        (int(torch.randint(h, (1,), generator=gen)), int(torch.randint(w, (1,), generator=gen)))
        for _ in range(2)
    ]
    logits = _one_hot_logits((1, 2, h, w), bins)
    widths = torch.tensor(width, dtype=DT)
    samples = sampling_argmax(logits, 1.0, 64, basis, generator=gen, basis_width=widths)
    index = norm_to_index(samples, torch.tensor([w, h], dtype=DT))  # (1, 2, S, 2)
    centre = torch.tensor([[j, i] for i, j in bins], dtype=DT).view(1, 2, 1, 2)
    assert ((index - centre).abs() <= widths.view(1, 2, 1, 1) * (1 + 1e-12)).all()


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    basis=st.sampled_from(BASES),
    w=st.tuples(st.floats(0.1, 4.0), st.floats(0.1, 4.0)),
)
def test_samples_are_affine_in_the_width(seed, basis, w):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 3, 6, 5, generator=gen, dtype=DT) * 3
    noise = _noise(logits.shape, 4, basis, gen)

    def at(width):
        return sampling_argmax(logits, 0.5, 4, basis, noise=noise, basis_width=width)

    mid = at((w[0] + w[1]) / 2)
    torch.testing.assert_close(mid, (at(w[0]) + at(w[1])) / 2, rtol=0, atol=1e-12)


def test_width_errors():
    x = torch.zeros(2, 3, 4, 4)
    with pytest.raises(ValueError, match=r"basis_width must have shape \(K,\) = \(3,\)"):
        sampling_argmax(x, basis_width=torch.ones(2))
    with pytest.raises(ValueError, match=r"basis_width must have shape .* \(2, 3, 4, 4\)"):
        sampling_argmax(x, training=False, basis_width=torch.ones(2, 3, 4))
    with pytest.raises(TypeError, match="basis_width must be None, a positive float"):
        sampling_argmax(x, basis_width=torch.ones(3, dtype=torch.long))
    with pytest.raises(TypeError, match="basis_width"):
        sampling_argmax(x, basis_width="wide")
    with pytest.raises(ValueError, match="basis_width must be a positive finite number"):
        sampling_argmax(x, basis_width=-1.0)
    with pytest.raises(ValueError, match=r"width must have shape \(K,\)"):
        mixture_variance(torch.full((2, 3, 4, 4), 1 / 16), "tri", torch.ones(4))
    with pytest.raises(ValueError, match=r"target must have shape \(B, K, D\)"):
        mixture_log_likelihood(torch.full((2, 3, 4, 4), 1 / 16), torch.zeros(2, 3, 3), "tri")
    with pytest.raises(ValueError, match="basis"):
        basis_variance("cauchy")
    with pytest.raises(ValueError, match="width"):
        basis_variance("uniform", 0.0)


# -- the predictive mixture ------------------------------------------------------------------------
def test_basis_variance_exact():
    assert [basis_variance(b) for b in BASES] == [0.25 / 3, 1 / 6, 1.0]
    assert [basis_variance(b, 2.0) for b in ("uni", "tri", "gauss")] == [4 / 3, 4 / 6, 4.0]
    w = torch.tensor([0.5, 3.0], dtype=DT)
    assert torch.equal(basis_variance("triangular", w), w**2 / 6)


@pytest.mark.parametrize("basis", BASES)
def test_one_hot_mixture_variance_is_the_basis_variance(basis):
    # 2-D map 4 x 5 one-hot at (row 1, col 3): the map has no spread, only the basis's, over n^2
    heat = _one_hot_logits((1, 2, 4, 5), [(1, 3), (0, 0)]).exp()
    n = torch.tensor([5.0, 4.0], dtype=DT)
    expected = torch.full((1, 2, 2), basis_variance(basis), dtype=DT) / n**2
    assert torch.equal(mixture_variance(heat, basis), expected)
    width = torch.tensor([0.5, 2.0], dtype=DT)
    got = mixture_variance(heat, basis, width)
    assert torch.equal(got, basis_variance(basis, width).view(1, 2, 1) / n**2)
    # per location: the one-hot bin's width
    wmap = torch.rand(1, 2, 4, 5, dtype=DT) + 0.5
    got = mixture_variance(heat, basis, wmap)
    w_at = torch.stack([wmap[0, 0, 1, 3], wmap[0, 1, 0, 0]]).view(1, 2, 1)
    torch.testing.assert_close(got, basis_variance(basis, w_at) / n**2, rtol=1e-15, atol=0)


def test_two_bin_mixture_variance_by_hand():
    # pi = [0.25, 0.75] on centres -0.25, 0.25: mean 0.125, variance 0.25 * 0.375^2 +
    # 0.75 * 0.125^2 = 0.046875; plus the triangle's 1/6 bins^2 over n^2 = 4
    heat = torch.tensor([[[0.25, 0.75]]], dtype=DT)
    got = mixture_variance(heat, "triangular")
    expected = torch.tensor([[[0.046875 + 1 / 24]]], dtype=DT)
    torch.testing.assert_close(got, expected, rtol=1e-15, atol=0)


@pytest.mark.parametrize("basis", ["uniform", "gaussian"])
def test_mixture_variance_is_the_near_one_hot_samplers(basis):
    # textbook Gumbel-softmax at tau 0.002 draws near one-hot bins from pi; the uniform and
    # (unre-weighted) gaussian bases then jitter by exactly the basis: the samples' variance is
    # the mixture's
    gen = torch.Generator().manual_seed(0)
    logits = torch.tensor([[[0.0, 1.0, 2.0, 0.5, -1.0, 0.0]]], dtype=DT)
    width = torch.tensor([1.7], dtype=DT)
    samples = sampling_argmax(
        logits,
        0.002,
        40000,
        basis,
        variant="textbook",
        generator=gen,
        gaussian_reweight=False,
        basis_width=width,
    )
    expected = mixture_variance(torch.softmax(logits, -1), basis, width)
    torch.testing.assert_close(samples.var(dim=2), expected, rtol=0.03, atol=0)


def test_one_hot_log_likelihood_is_the_log_basis():
    # 2-D 4 x 5 map one-hot at (row 2, col 1); target 0.25 bins right, 0.5 bins up of its centre
    heat = _one_hot_logits((1, 1, 4, 5), [(2, 1)]).exp()
    target = torch.tensor([[[index_to_norm(1.25, 5), index_to_norm(1.5, 4)]]], dtype=DT)
    per_volume = 5 * 4  # density in bins -> per unit of normalised area
    cases = {
        # triangle (1 - |z|) of half-width 1: 0.75 * 0.5
        ("triangular", None): 0.75 * 0.5,
        # half-width 2: (1 - 0.125) / 2 * (1 - 0.25) / 2
        ("triangular", 2.0): 0.875 / 2 * 0.75 / 2,
        # uniform of half-width 0.5 (density 1): x inside, y on the edge (|z| = 1, closed)
        ("uniform", None): 1.0,
        ("gaussian", None): math.exp(-(0.25**2 + 0.5**2) / 2) / (2 * math.pi),
        ("gaussian", 0.5): math.exp(-(0.5**2 + 1.0**2) / 2) / (2 * math.pi) / 0.25,
    }
    for (basis, width), density in cases.items():
        for w in (width, None if width is None else torch.tensor([width], dtype=DT)):
            got = mixture_log_likelihood(heat, target, basis, w)
            expected = torch.tensor([[math.log(per_volume * density)]], dtype=DT)
            torch.testing.assert_close(got, expected, rtol=1e-15, atol=1e-15)
    # outside the support of the only bin: -inf, or the floor of heatmap_log_likelihood (a bin
    # of probability min_prob) with a finite gradient
    assert mixture_log_likelihood(heat, target, "uniform", 0.4).item() == -INF
    width = torch.tensor([0.4], dtype=DT, requires_grad=True)
    floored = mixture_log_likelihood(heat, target, "uniform", width, min_prob=1e-12)
    assert floored.item() == math.log(1e-12) + math.log(per_volume)
    floored.sum().backward()
    assert width.grad.item() == 0
    with pytest.raises(ValueError, match="min_prob"):
        mixture_log_likelihood(heat, target, "uniform", min_prob=0.0)
    # per location: the one-hot bin's width (2), whatever the others'
    wmap = torch.full((1, 1, 4, 5), 0.1, dtype=DT)
    wmap[0, 0, 2, 1] = 2.0
    got = mixture_log_likelihood(heat, target, "triangular", wmap)
    expected = torch.tensor([[per_volume * cases[("triangular", 2.0)]]], dtype=DT)
    torch.testing.assert_close(got.exp(), expected, rtol=1e-14, atol=0)


def test_two_bin_log_likelihood_by_hand():
    # pi = [0.25, 0.75] on 2 bins, triangles of half-width 1; target at index 0.25: 0.25 * 0.75
    # + 0.75 * 0.25 = 0.375 per bin, 0.75 per normalised unit
    heat = torch.tensor([[[0.25, 0.75]]], dtype=DT, requires_grad=True)
    target = torch.tensor([[[index_to_norm(0.25, 2)]]], dtype=DT)
    got = mixture_log_likelihood(heat, target, "triangular")
    torch.testing.assert_close(got, torch.tensor([[math.log(0.75)]], dtype=DT), rtol=1e-15, atol=0)
    got.sum().backward()  # d log p / d pi_j = k_j / p: 0.75 * 2 / 0.75 and 0.25 * 2 / 0.75
    expected = torch.tensor([[[2.0, 2 / 3]]], dtype=DT)
    torch.testing.assert_close(heat.grad, expected, rtol=1e-14, atol=0)


@pytest.mark.parametrize("basis", BASES)
def test_mixture_density_integrates_to_one(basis):
    heat = torch.softmax(torch.tensor([[[0.0, 2.0, 1.0, -1.0, 0.5]]], dtype=DT), -1)
    t = torch.linspace(-1.5, 1.5, 30001, dtype=DT)
    targets = t.view(-1, 1, 1)
    per_location = torch.tensor([[[0.4, 1, 2, 0.7, 1.1]]], dtype=DT).expand(len(t), 1, 5)
    for width in (None, torch.tensor([1.3], dtype=DT), per_location):
        maps, w = heat.expand(len(t), 1, 5), width
        density = mixture_log_likelihood(maps, targets, basis, w).exp().squeeze(-1)
        torch.testing.assert_close(torch.trapezoid(density, t).item(), 1.0, rtol=0, atol=2e-4)


def test_log_likelihood_gradients_are_finite_with_zero_mass_bins():
    heat = torch.tensor([[[0.0, 0.4, 0.6, 0.0]]], dtype=DT, requires_grad=True)
    width = torch.tensor([0.8], dtype=DT, requires_grad=True)
    target = torch.tensor([[[index_to_norm(1.7, 4)]]], dtype=DT)
    for basis in BASES:
        mixture_log_likelihood(heat, target, basis, width).sum().backward()
        assert torch.isfinite(heat.grad).all() and torch.isfinite(width.grad).all(), basis


@pytest.mark.parametrize("basis", BASES)
def test_gradcheck_log_likelihood(basis):
    gen = torch.Generator().manual_seed(1)
    heat = torch.softmax(torch.randn(2, 2, 3, 4, generator=gen, dtype=DT).flatten(2), -1)
    heat = heat.view(2, 2, 3, 4).requires_grad_()
    target = (torch.rand(2, 2, 2, generator=gen, dtype=DT) - 0.5) * 0.8
    per_keypoint = (torch.rand(2, generator=gen, dtype=DT) + 1.0).requires_grad_()
    per_location = (torch.rand(2, 2, 3, 4, generator=gen, dtype=DT) + 1.0).requires_grad_()
    for width in (per_keypoint, per_location):
        fn = lambda h, w, t: mixture_log_likelihood(h, t, basis, w)  # noqa: E731
        assert torch.autograd.gradcheck(fn, (heat, width, target.requires_grad_()))


# -- the head --------------------------------------------------------------------------------------
LEARNED = ["keypoint", "location"]


@pytest.mark.parametrize("learn_width", LEARNED)
@pytest.mark.parametrize("num_dims", [2, 3])
def test_head_contract_with_learned_width(monkeypatch, learn_width, num_dims):
    # test_heads' contract and overfitting checks, on the head built with learn_width
    build = functools.partial(test_heads.build, learn_width=learn_width)
    monkeypatch.setattr(test_heads, "build", build)
    test_heads.test_head_contract("SamplingArgmaxHead", num_dims)
    test_heads.test_head_overfits_one_batch("SamplingArgmaxHead", num_dims)


@pytest.mark.parametrize("num_dims", [2, 3])
def test_head_width_parameters_and_gradients(num_dims):
    build = test_heads.build
    plain = build("SamplingArgmaxHead", num_dims).state_dict()
    assert (
        build("SamplingArgmaxHead", num_dims, learn_width="none").state_dict().keys()
        == plain.keys()
    )
    keypoint = build("SamplingArgmaxHead", num_dims, learn_width="keypoint", init_width=0.7)
    assert set(keypoint.state_dict()) - set(plain) == {"log_width"}
    assert torch.equal(keypoint.log_width.data, torch.full((3,), math.log(0.7)))
    location = build("SamplingArgmaxHead", num_dims, learn_width="location", init_width=0.7)
    assert set(location.state_dict()) - set(plain) == {"width_conv.weight", "width_conv.bias"}
    feats = torch.randn(2, 16, 4, 3)
    target = torch.rand(2, 3, num_dims) - 0.5
    for head in (keypoint, location):
        head.train()
        out = head(feats)
        width = head.basis_width(out)
        if head is location:
            assert out.sigma_logits.shape == out.logits.shape
            torch.testing.assert_close(width, torch.full_like(width, 0.7), rtol=0.05, atol=0)
        head.loss(out, target)["loss_kpt"].backward()
        for name, param in head.named_parameters():
            if "width" in name:
                assert param.grad is not None and param.grad.abs().sum() > 0, name


@pytest.mark.parametrize("learn_width", ["none", *LEARNED])
def test_head_predictive_sigma_and_log_likelihood(learn_width):
    # one-hot maps: sigma is the basis's, the log likelihood the log basis; widths 1.5 learned
    logits = test_heads._one_hot_logits([(3, 5), (10, 20), (0, 31)], size=(32, 24)).double()
    heat = spatial_softmax(logits)
    width = 1.0 if learn_width == "none" else 1.5
    heads, outs = [], []
    for grid in ({}, dict(grid="mmpose", input_size=test_heads.INPUT)):
        head = test_heads.build("SamplingArgmaxHead", learn_width=learn_width, **grid).double()
        log_width = None
        if learn_width == "keypoint":
            head.log_width.data.fill_(math.log(width))
        elif learn_width == "location":
            log_width = torch.full_like(logits, math.log(width))
        offset = head.grid_offset(heat)
        coords = heatmap_expectation(heat) + (0 if offset is None else offset)
        heads.append(head)
        outs.append(HeadOutput(coords, heatmaps=heat, logits=logits, sigma_logits=log_width))
    n = torch.tensor([24.0, 32.0], dtype=DT)
    sigma = torch.full((1, 3, 2), basis_variance("triangular", width), dtype=DT).sqrt() / n
    for head, out in zip(heads, outs):
        torch.testing.assert_close(head.predictive_sigma(out), sigma, rtol=1e-14, atol=0)
    # the log likelihood follows the grid: the mmpose head's at target + delta is ours at target
    target = outs[0].coords + torch.tensor([0.3, -0.6], dtype=DT) / n
    ours = heads[0].log_likelihood(outs[0], target)
    delta = torch.tensor(test_heads.DELTA, dtype=DT)
    theirs = heads[1].log_likelihood(outs[1], target + delta)
    torch.testing.assert_close(theirs, ours, rtol=1e-12, atol=1e-12)
    tri = (1 - 0.3 / width) * (1 - 0.6 / width) / width**2
    # plus the floor of a bin of probability MIN_BIN_PROB
    expected = torch.full((1, 3), math.log((tri + heads[0].MIN_BIN_PROB) * 24 * 32), dtype=DT)
    torch.testing.assert_close(ours, expected, rtol=1e-12, atol=1e-12)


def test_head_learn_width_errors():
    build = test_heads.build
    with pytest.raises(ValueError, match="learn_width must be one of"):
        build("SamplingArgmaxHead", learn_width="pixel")
    with pytest.raises(ValueError, match="init_width must be a positive finite number"):
        build("SamplingArgmaxHead", learn_width="keypoint", init_width=0.0)
    with pytest.raises(ValueError, match="init_width needs learn_width"):
        build("SamplingArgmaxHead", init_width=1.0)
    head = build("SamplingArgmaxHead", learn_width="location")
    out = head(torch.randn(2, 16, 4, 3))._replace(sigma_logits=None)
    with pytest.raises(ValueError, match="sigma_logits"):
        head.loss(out, torch.zeros(2, 3, 2))


def test_predictive_sigma_traces_without_data_dependent_branches():
    # the exported graph runs predict (and predictive_sigma): torch.export refuses any
    # data-dependent Python branch
    head = test_heads.build("SamplingArgmaxHead", learn_width="keypoint").eval()

    class Sigma(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.head = head

        def forward(self, feats):
            return self.head.predictive_sigma(self.head(feats))

    feats = torch.randn(2, 16, 4, 3)
    exported = torch.export.export(Sigma(), (feats,))
    torch.testing.assert_close(exported.module()(feats), Sigma()(feats))


@pytest.mark.parametrize("learn_width", LEARNED)
def test_onnx_export_with_learned_width(tmp_path, learn_width):
    # predict (soft-argmax and the mixture's sigma) inside the graph, with the flip test, at a
    # batch other than the traced one
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from rle.deploy import OnnxPoseModel, export_onnx
    from tests import test_export as tx

    model = tx.build(dict(tx.HEADS_2D["SamplingArgmaxHead"], learn_width=learn_width))
    path = export_onnx(
        model, tmp_path / "m.onnx", input_size=tx.INPUT_SIZE, flip_test=True,
        exporter="torchscript",
    )  # fmt: skip
    runner = OnnxPoseModel(path)
    x = torch.randn(
        3, 3, tx.INPUT_SIZE[1], tx.INPUT_SIZE[0], generator=torch.Generator().manual_seed(0)
    )
    want = tx._eager(model, x, True)
    got = runner.run(x)
    assert want[2] is not None and float(want[2].std()) > 1e-4  # sigma varies
    for w, g in zip(want, got):
        assert float(np.abs(g - w.numpy()).max()) <= tx.TOL


# -- the width's own objective: width_loss="nll" ---------------------------------------------------
def _nll_head(basis="gaussian", learn_width="keypoint", **kw):
    return test_heads.build(
        "SamplingArgmaxHead", basis=basis, learn_width=learn_width, width_loss="nll", **kw
    ).double()


@pytest.mark.parametrize("learn_width", LEARNED)
def test_nll_width_loss_trains_the_width_alone(learn_width):
    """``loss_width`` reaches only the width's parameters, ``loss_kpt`` only the others (the
    samples use the width detached); ``loss_width`` is the mean negative log-likelihood of the
    labelled keypoints."""
    torch.manual_seed(0)
    head = _nll_head("triangular", learn_width).train()
    feats = torch.randn(2, 16, 4, 3, dtype=DT)
    target = torch.rand(2, 3, 2, dtype=DT) * 0.4 - 0.2
    weight = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]], dtype=DT)
    out = head(feats)
    losses = head.loss(out, target, weight)
    assert set(losses) == {"loss_kpt", "loss_width"}
    log_p = head.log_likelihood(out, target)
    expected = -(log_p * weight).sum() / weight.sum()
    torch.testing.assert_close(losses["loss_width"], expected, rtol=1e-12, atol=1e-12)
    owners = (("loss_kpt", lambda n: "width" not in n), ("loss_width", lambda n: "width" in n))
    for key, owns in owners:
        head.zero_grad()
        losses = head.loss(head(feats), target, weight)
        losses[key].backward()
        for name, param in head.named_parameters():
            moved = param.grad is not None and bool(param.grad.abs().sum() > 0)
            assert moved == owns(name), (key, name)


def test_nll_width_is_the_maximum_likelihood_width():
    """One-hot maps and Gaussian residuals: the NLL-trained width of each keypoint is the
    residuals' root mean square over both axes (the Gaussian MLE of a known centre), exactly
    (to the optimiser's tolerance); trained through the samples it would shrink instead."""
    gen = torch.Generator().manual_seed(0)
    b, (h, w) = 50, (32, 24)
    centre = [(12, 16), (8, 10), (15, 20)]  # (x, y) bin indices
    logits = _one_hot_logits((1, 3, h, w), [(y, x) for x, y in centre]).expand(b, -1, -1, -1)
    stds = torch.tensor([0.8, 1.7, 2.5], dtype=DT)
    residual = torch.randn(b, 3, 2, generator=gen, dtype=DT) * stds[:, None]
    index = torch.tensor(centre, dtype=DT) + residual
    target = torch.stack([index_to_norm(index[..., 0], w), index_to_norm(index[..., 1], h)], -1)
    out = HeadOutput(heatmap_expectation(spatial_softmax(logits)), heatmaps=spatial_softmax(logits),
                     logits=logits)  # fmt: skip
    head = _nll_head(generator=torch.Generator().manual_seed(1))
    optimiser = torch.optim.LBFGS(
        [head.log_width], lr=1, max_iter=100, tolerance_grad=1e-12, tolerance_change=1e-14,
        line_search_fn="strong_wolfe",
    )  # fmt: skip

    def closure():
        optimiser.zero_grad()
        loss = head.loss(out, target)["loss_width"]
        loss.backward()
        return loss

    optimiser.step(closure)
    rms = residual.pow(2).mean(dim=(0, 2)).sqrt()
    torch.testing.assert_close(head.log_width.exp().detach(), rms, rtol=1e-6, atol=0)
    head.width_loss = "samples"  # the samples' L1 pulls every width towards 0
    head.log_width.grad = None
    head.loss(out, target)["loss_kpt"].backward()
    assert (head.log_width.grad > 0).all()


def test_nll_width_loss_errors():
    with pytest.raises(ValueError, match="width_loss must be one of"):
        test_heads.build("SamplingArgmaxHead", learn_width="keypoint", width_loss="mle")
    with pytest.raises(ValueError, match="needs learn_width"):
        test_heads.build("SamplingArgmaxHead", width_loss="nll")
    with pytest.raises(ValueError, match="width_loss_weight"):
        _nll_head(width_loss_weight=0.0)
