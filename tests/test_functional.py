"""Heatmap decoders: golden parity through the converters, exact hand-built cases, properties."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import heads.functional as HF
from rle.coords import from_frame, to_frame, to_index
from tests.conftest import average_loss

CASES = ["1d", "2d", "3d"]
TOL = dict(rtol=1e-10, atol=1e-12)


def sizes_of(maps, d):
    return tuple(maps.shape[-1 - i] for i in range(d))


def noise_of(inputs, case, basis):
    prefix = f"samp_noise_{case}_{basis}_"
    return {k[len(prefix) :]: v for k, v in inputs.items() if k.startswith(prefix)}


# -- golden parity -----------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES)
def test_softmax_softargmax_kornia_frames(dec_golden, case):
    inp, out = dec_golden["inputs"], dec_golden["outputs"]
    logits = inp[f"logits_{case}"]
    sizes = sizes_of(logits, logits.dim() - 2)
    torch.testing.assert_close(HF.spatial_softmax(logits), out[f"probs_{case}"], **TOL)
    coords = HF.soft_argmax(logits)
    torch.testing.assert_close(to_index(coords, sizes), out[f"softargmax_index_{case}"], **TOL)
    torch.testing.assert_close(
        to_frame(coords, sizes, "kornia"), out[f"softargmax_kornia_norm_{case}"], **TOL
    )
    test = HF.sampling_argmax(logits, training=False)
    torch.testing.assert_close(to_frame(test, sizes, "rle"), out[f"samp_argmax_test_{case}"], **TOL)
    gt = from_frame(inp[f"gt_{case}_sampargmax"], sizes, "rle")
    l1 = (test - gt).abs().sum() / logits.shape[0]
    torch.testing.assert_close(l1, out[f"samp_argmax_test_l1_{case}"], **TOL)


def test_kornia_2d_outputs(dec_golden):
    inp, out = dec_golden["inputs"], dec_golden["outputs"]
    logits = inp["logits_2d"]
    coords = HF.soft_argmax(logits)
    torch.testing.assert_close(
        to_frame(coords, (12, 16), "kornia"), out["kornia_spatial_soft_argmax2d_norm"], **TOL
    )
    torch.testing.assert_close(
        to_index(coords, (12, 16)), out["kornia_spatial_soft_argmax2d_pixel"], **TOL
    )
    # kornia 0.9.0 computes softmax(x / temperature): temperature 10 is beta 0.1
    torch.testing.assert_close(
        to_frame(HF.soft_argmax(logits, beta=0.1), (12, 16), "kornia"),
        out["kornia_spatial_soft_argmax2d_temp10_norm"],
        **TOL,
    )


@pytest.mark.parametrize("case", CASES)
def test_dsntnn_parity(dec_golden, case):
    inp, out = dec_golden["inputs"], dec_golden["outputs"]
    probs = out[f"probs_{case}"]
    d = probs.dim() - 2
    sizes = sizes_of(probs, d)
    mu = from_frame(inp[f"mu_t_{case}_dsntnn"], sizes, "dsntnn")
    coords = HF.dsnt(probs)
    torch.testing.assert_close(to_frame(coords, sizes, "dsntnn"), out[f"dsntnn_dsnt_{case}"], **TOL)
    torch.testing.assert_close(to_index(coords, sizes), out[f"dsntnn_dsnt_pixel_{case}"], **TOL)
    for s in (1, 2):
        key = f"{case}_sigma{s}"
        torch.testing.assert_close(HF.js_reg(probs, mu, s), out[f"dsntnn_js_reg_{key}"], **TOL)
        torch.testing.assert_close(HF.kl_reg(probs, mu, s), out[f"dsntnn_kl_reg_{key}"], **TOL)
        torch.testing.assert_close(
            HF.variance_reg(probs, s), out[f"dsntnn_variance_reg_{key}"], rtol=1e-10, atol=1e-10
        )
        torch.testing.assert_close(
            HF.gaussian_heatmaps(mu, sizes, s), out[f"dsntnn_make_gauss_{key}"], **TOL
        )
    dsntnn_frame = lambda c: to_frame(c, sizes, "dsntnn")  # noqa: E731
    euc = HF.euclidean_losses(dsntnn_frame(coords), dsntnn_frame(mu))
    torch.testing.assert_close(euc, out[f"dsntnn_euclidean_{case}"], **TOL)
    torch.testing.assert_close(average_loss(euc), out[f"dsntnn_average_euclidean_{case}"], **TOL)
    total = average_loss(euc + HF.js_reg(probs, mu, 1))
    torch.testing.assert_close(total, out[f"dsntnn_average_euc_plus_js1_{case}"], **TOL)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("beta", [1, 10])
def test_ipr_and_debias_parity(dec_golden, case, beta):
    inp, out = dec_golden["inputs"], dec_golden["outputs"]
    logits = inp[f"logits_{case}"]
    sizes = sizes_of(logits, logits.dim() - 2)
    key = f"{case}_beta{beta}"
    mm = to_frame(HF.soft_argmax(logits, beta), sizes, "mmpose")
    torch.testing.assert_close(mm, out[f"mmpose_ipr_{key}"], **TOL)
    mm_debias = HF.debiased_soft_argmax(logits, beta, variant="mmpose")
    torch.testing.assert_close(
        to_frame(mm_debias, sizes, "mmpose"), out[f"mmpose_ipr_debias_{key}"], **TOL
    )
    coords, ratio = HF.debiased_soft_argmax(logits, beta, return_ratio=True)
    torch.testing.assert_close(to_index(coords, sizes), out[f"derived_debias_index_{key}"], **TOL)
    torch.testing.assert_close(ratio, out[f"derived_debias_ratio_N_over_C_{key}"], **TOL)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("basis", ["uni", "tri", "gaussian"])
@pytest.mark.parametrize("tau,tag", [(2.0, "2p0"), (0.5, "0p5")])
def test_sampling_argmax_train_parity(dec_golden, case, basis, tau, tag):
    inp, out = dec_golden["inputs"], dec_golden["outputs"]
    logits = inp[f"logits_{case}"]
    sizes = sizes_of(logits, logits.dim() - 2)
    samples = HF.sampling_argmax(logits, tau, 30, basis, noise=noise_of(inp, case, basis))
    key = f"{case}_{basis}_tau{tag}"
    torch.testing.assert_close(
        to_frame(samples, sizes, "rle"), out[f"samp_argmax_train_{key}"], **TOL
    )
    gt = from_frame(inp[f"gt_{case}_sampargmax"], sizes, "rle").unsqueeze(2)
    l1 = (samples - gt).abs().sum() / logits.shape[0] / 30
    torch.testing.assert_close(l1, out[f"samp_argmax_train_l1_{key}"], **TOL)
    torch.testing.assert_close(
        to_frame(samples.mean(2), sizes, "rle"), out[f"samp_argmax_train_sample_mean_{key}"], **TOL
    )


@pytest.mark.parametrize("clip", [0, 1])
def test_sampling_argmax_gradients(dec_golden, clip):
    inp, out = dec_golden["inputs"], dec_golden["outputs"]
    gt = from_frame(inp["gt_2d_sampargmax"], (12, 16), "rle")
    x = inp["logits_2d"].clone().requires_grad_()
    test = HF.sampling_argmax(x, training=False, clip_integral=bool(clip))
    ((test - gt).abs().sum() / 2).backward()
    torch.testing.assert_close(x.grad, out[f"grad_l1_test_2d_clip{clip}"], **TOL)
    x = inp["logits_2d"].clone().requires_grad_()
    samples = HF.sampling_argmax(
        x, 2.0, 30, "tri", noise=noise_of(inp, "2d", "tri"), clip_integral=bool(clip)
    )
    ((samples - gt.unsqueeze(2)).abs().sum() / 2 / 30).backward()
    torch.testing.assert_close(x.grad, out[f"grad_l1_train_tri_tau2_2d_clip{clip}"], **TOL)


def test_dsntnn_objective_gradient(dec_golden):
    inp, out = dec_golden["inputs"], dec_golden["outputs"]
    x = inp["logits_2d"].clone().requires_grad_()
    probs = HF.spatial_softmax(x)
    mu = from_frame(inp["mu_t_2d_dsntnn"], (12, 16), "dsntnn")
    loss = average_loss(HF.euclidean_losses(2 * HF.dsnt(probs), 2 * mu) + HF.js_reg(probs, mu))
    loss.backward()
    torch.testing.assert_close(x.grad, out["grad_dsntnn_euc_js1_2d"], **TOL)


def test_edge_and_overflow_cases(dec_golden):
    inp, out = dec_golden["inputs"], dec_golden["outputs"]
    edge = inp["logits_2d_edge"]
    s = (12, 16)
    torch.testing.assert_close(
        to_frame(HF.dsnt(HF.spatial_softmax(edge)), s, "dsntnn"), out["edge_dsntnn_dsnt"], **TOL
    )
    torch.testing.assert_close(
        to_index(HF.soft_argmax(edge), s), out["edge_softargmax_index"], **TOL
    )
    torch.testing.assert_close(
        to_frame(HF.soft_argmax(edge), s, "mmpose"), out["edge_mmpose_ipr_beta1"], **TOL
    )
    torch.testing.assert_close(
        to_frame(HF.debiased_soft_argmax(edge, variant="mmpose"), s, "mmpose"),
        out["edge_mmpose_ipr_debias_beta1"],
        **TOL,
    )
    torch.testing.assert_close(
        to_index(HF.debiased_soft_argmax(edge), s), out["edge_derived_debias_index_beta1"], **TOL
    )
    big = inp["logits_2d_big"]
    torch.testing.assert_close(
        to_frame(HF.debiased_soft_argmax(big, variant="mmpose"), s, "mmpose"),
        out["big_mmpose_ipr_debias_beta1_float64"],
        **TOL,
    )
    big32 = big.float().requires_grad_()
    # MMPose's formula overflows to NaN in fp32 (reproduced); ours stays finite and exact
    assert torch.isnan(HF.debiased_soft_argmax(big32, variant="mmpose")).all()
    assert torch.isnan(out["big_mmpose_ipr_debias_beta1_float32"]).all()
    ours = HF.debiased_soft_argmax(big32)
    torch.testing.assert_close(to_index(ours, s), out["big_derived_debias_index_float32"].float())
    torch.testing.assert_close(
        to_index(HF.soft_argmax(big32), s), out["big_softargmax_index_float32"].float()
    )
    ours.sum().backward()
    assert torch.isfinite(big32.grad).all()


def test_tau_schedules(dec_golden):
    out = dec_golden["outputs"]
    two = torch.tensor([HF.sampling_argmax_tau(e) for e in range(31)], dtype=torch.float64)
    three = torch.tensor(
        [HF.sampling_argmax_tau(e, 3) for e in range(0, 201, 25)], dtype=torch.float64
    )
    torch.testing.assert_close(two, out["tau_schedule_2d_epochs_0_to_30"], **TOL)
    torch.testing.assert_close(three, out["tau_schedule_3d_epochs_0_200_step25"], **TOL)


# -- exact hand-built cases (dsntnn's own anchors) ---------------------------------------------
def test_dsntnn_anchors(dec_golden):
    inp = dec_golden["inputs"]
    simple = inp["anchor_simple"]  # 5x5, mass centred on pixel (3, 2)
    coords = HF.dsnt(simple)
    torch.testing.assert_close(
        to_frame(coords, (5, 5), "dsntnn"), torch.tensor([[[0.4, 0.0]]], dtype=torch.float64), **TOL
    )
    torch.testing.assert_close(
        to_index(coords, (5, 5)), torch.tensor([[[3.0, 2.0]]], dtype=torch.float64), **TOL
    )
    var = HF.variance_reg(inp["anchor_variance_input"], 2.0)
    assert var.item() == pytest.approx(28.88, abs=1e-12)


def test_soft_argmax_exact_small_map():
    # a 1x3 map with probabilities (0.25, 0.5, 0.25) has its centre at 0; (0, 0.5, 0.5) at 1/6
    logits = torch.log(torch.tensor([[[[0.25, 0.5, 0.25]]]], dtype=torch.float64))
    assert HF.soft_argmax(logits).tolist() == [[[0.0, 0.0]]]
    heat = torch.tensor([[[[0.0, 0.5, 0.5]]]], dtype=torch.float64)
    assert HF.heatmap_expectation(heat)[0, 0, 0].item() == pytest.approx(1 / 6, abs=1e-15)
    # gradient of x w.r.t. the logits: p_j (x_j - E[x]) = (1/4)(-1/3), 0, (1/4)(1/3)
    x = logits.clone().requires_grad_()
    HF.soft_argmax(x)[0, 0, 0].backward()
    expected = torch.tensor([[[[-1 / 12, 0.0, 1 / 12]]]], dtype=torch.float64)
    torch.testing.assert_close(x.grad, expected, rtol=0, atol=1e-15)


def test_heatmap_confidence_is_peak_probability():
    heat = torch.tensor([[[[0.1, 0.7], [0.1, 0.1]]]])
    assert HF.heatmap_confidence(heat).tolist() == [[pytest.approx(0.7)]]


def test_debias_recovers_foreground_expectation():
    # background logit 0 on every bin but one peak: J_hat is pulled to the centre, J is not
    logits = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    logits[0, 0, 1, 6] = 5.0
    coords = HF.debiased_soft_argmax(logits)
    peak = torch.tensor([[[(6 + 0.5) / 8 - 0.5, (1 + 0.5) / 8 - 0.5]]], dtype=torch.float64)
    # the background's exp(0) = 1 per bin is exactly what is removed: J is the peak itself
    torch.testing.assert_close(coords, peak, rtol=0, atol=1e-15)
    # while the plain soft-argmax is pulled to the centre by (e^5 - 1) / (e^5 + 63)
    shrink = (torch.e**5 - 1) / (torch.e**5 + 63)
    torch.testing.assert_close(HF.soft_argmax(logits), peak * shrink, rtol=0, atol=1e-15)


def test_debias_guard_when_ratio_reaches_one():
    logits = torch.full((1, 1, 4, 4), -3.0, requires_grad=True)  # r = e^3 > 1
    coords, ratio = HF.debiased_soft_argmax(logits, return_ratio=True)
    assert ratio.item() > 1
    coords.sum().backward()
    assert torch.isfinite(coords).all() and torch.isfinite(logits.grad).all()


# -- properties --------------------------------------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(
    scale=st.floats(1e-3, 1e4),
    seed=st.integers(0, 1000),
    dims=st.sampled_from([1, 2, 3]),
    decoder=st.sampled_from(["soft", "debias", "sample", "dsnt_js"]),
)
def test_finite_values_and_gradients(scale, seed, dims, decoder):
    gen = torch.Generator().manual_seed(seed)
    shape = (2, 2) + (5,) * dims
    x = ((torch.rand(shape, generator=gen) * 2 - 1) * scale).requires_grad_()
    if decoder == "soft":
        out = HF.soft_argmax(x)
    elif decoder == "debias":
        out = HF.debiased_soft_argmax(x, beta=3.0)
    elif decoder == "sample":
        out = HF.sampling_argmax(x, 0.5, 4, "tri", generator=gen)
    else:
        probs = HF.spatial_softmax(x)
        out = HF.dsnt(probs).sum() + HF.js_reg(probs, torch.zeros(2, 2, dims)).sum()
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(x.grad).all()


@settings(max_examples=40, deadline=None)
@given(
    w=st.integers(8, 20),
    h=st.integers(8, 20),
    px=st.floats(2.0, 3.0),
    py=st.floats(2.0, 3.0),
    beta=st.floats(0.5, 5.0),
)
def test_one_bin_shift_moves_by_one_bin(w, h, px, py, beta):
    # a sharp Gaussian peak away from the borders: shifting it one bin moves the soft-argmax
    # by exactly one bin (1/n in normalised units)
    ys = torch.arange(h, dtype=torch.float64).view(h, 1)
    xs = torch.arange(w, dtype=torch.float64).view(1, w)

    def peak(cx, cy):
        return (-((xs - cx) ** 2 + (ys - cy) ** 2) * 40.0).view(1, 1, h, w)

    base = HF.soft_argmax(peak(px, py), beta)
    shifted = HF.soft_argmax(peak(px + 1, py + 1), beta)
    torch.testing.assert_close(
        shifted - base, torch.tensor([[[1 / w, 1 / h]]], dtype=torch.float64), rtol=0, atol=1e-9
    )


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), dims=st.sampled_from([1, 2, 3]), beta=st.floats(0.1, 10))
def test_decoding_commutes_with_flip(seed, dims, beta):
    x = torch.randn(
        (2, 3) + (6,) * dims, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )
    flipped = x.flip(-1)
    for decode in (HF.soft_argmax, HF.debiased_soft_argmax):
        a = decode(x, beta)
        b = decode(flipped, beta)
        a[..., 0] = -a[..., 0]
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_gradcheck_decoders(dims):
    gen = torch.Generator().manual_seed(dims)
    shape = (1, 2) + (4,) * dims
    x = torch.randn(shape, generator=gen, dtype=torch.float64, requires_grad=True)
    mu = torch.rand(1, 2, dims, generator=gen, dtype=torch.float64) - 0.5
    noise = {"gumbel_u": torch.rand(1, 2, 3, 4**dims, generator=gen, dtype=torch.float64)}
    gauss_noise = dict(noise)
    for axis in "xyz"[:dims]:
        noise[f"u_{axis}"] = torch.rand(1, 2, 3, 4, generator=gen, dtype=torch.float64)
        gauss_noise[f"z_{axis}"] = torch.randn(1, 2, 3, 4, generator=gen, dtype=torch.float64)
    fns = [
        lambda t: HF.soft_argmax(t, 2.0),
        lambda t: HF.debiased_soft_argmax(t, 0.5),
        lambda t: HF.js_reg(HF.spatial_softmax(t), mu, 1.0),
        lambda t: HF.kl_reg(HF.spatial_softmax(t), mu, 1.5),
        lambda t: HF.variance_reg(HF.spatial_softmax(t), 1.0),
        lambda t: HF.sampling_argmax(t, 1.0, 3, "uniform", noise=noise),
        lambda t: HF.sampling_argmax(t, 1.0, 3, "triangular", noise=noise, variant="textbook"),
        lambda t: HF.sampling_argmax(t, 0.7, 3, "gaussian", noise=gauss_noise),
    ]
    for fn in fns:
        assert torch.autograd.gradcheck(fn, (x,))


def test_sampling_generator_determinism_and_chunking():
    x = torch.randn(2, 3, 8, 6, dtype=torch.float64)
    a = HF.sampling_argmax(x, 1.0, 10, generator=torch.Generator().manual_seed(0))
    b = HF.sampling_argmax(x, 1.0, 10, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.shape == (2, 3, 10, 2)
    # chunked: same distribution, memory bounded, gradients flow through the checkpoint
    xg = x.clone().requires_grad_()
    c = HF.sampling_argmax(xg, 1.0, 10, chunk_size=3, generator=torch.Generator().manual_seed(0))
    c.sum().backward()
    assert c.shape == (2, 3, 10, 2) and torch.isfinite(xg.grad).all()
    d = HF.sampling_argmax(x, 1.0, 10, chunk_size=3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(c.detach(), d)
    assert (c.detach().abs() <= 0.5 + 1.0 / 6).all()  # within a bin of the map


def test_chunked_checkpoint_recomputes_the_same_noise(monkeypatch):
    # the checkpointed backward regenerates each chunk's noise from its seed: its gradient equals
    # the gradient of the same computation kept in memory (no checkpoint)
    x = torch.randn(2, 3, 8, 6, dtype=torch.float64)
    weights = torch.randn(2, 3, 10, 2, dtype=torch.float64)

    def grad_of():
        xg = x.clone().requires_grad_()
        out = HF.sampling_argmax(
            xg, 0.7, 10, "triangular", chunk_size=4, generator=torch.Generator().manual_seed(3)
        )
        (out * weights).sum().backward()
        return out.detach(), xg.grad

    out_ckpt, grad_ckpt = grad_of()
    monkeypatch.setattr(HF.sampling, "checkpoint", lambda fn, *args, **kw: fn(*args))
    out_plain, grad_plain = grad_of()
    assert torch.equal(out_ckpt, out_plain)
    torch.testing.assert_close(grad_ckpt, grad_plain, rtol=1e-12, atol=1e-14)


def test_official_variant_samples_flatter_concrete_at_low_tau():
    torch.manual_seed(0)
    x = 3 * torch.randn(1, 1, 16, 16, dtype=torch.float64)
    spread = {}
    for variant in ("official", "textbook"):
        gen = torch.Generator().manual_seed(1)
        s = HF.sampling_argmax(x, 0.1, 200, "uniform", variant=variant, generator=gen)
        spread[variant] = s.std(dim=2).mean().item()
    # textbook softmax((h+g)/tau) at tau 0.1 gives near one-hot samples of softmax(h); the
    # official softmax(h + g/tau) is a Concrete with logits tau*h = 0.1 h: flatter, more spread
    assert spread["official"] > 1.1 * spread["textbook"]


def test_bad_input():
    with pytest.raises(ValueError, match=r"\(B, K, W\), \(B, K, H, W\) or \(B, K, Dz, H, W\)"):
        HF.soft_argmax(torch.zeros(2, 3, 4, 4, 4, 4))
    with pytest.raises(TypeError, match="floating-point"):
        HF.soft_argmax(torch.zeros(2, 3, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="beta"):
        HF.soft_argmax(torch.zeros(1, 1, 4, 4), beta=0)
    with pytest.raises(ValueError, match=r"mu_t must have shape \(B, K, D\)"):
        HF.js_reg(torch.zeros(1, 2, 4, 4), torch.zeros(1, 3, 2))
    with pytest.raises(ValueError, match="basis"):
        HF.sampling_argmax(torch.zeros(1, 1, 4, 4), basis="cauchy")
    with pytest.raises(ValueError, match=r"noise\['gumbel_u'\] must have shape"):
        HF.sampling_argmax(
            torch.zeros(1, 1, 4, 4), 1.0, 2, noise={"gumbel_u": torch.rand(1, 1, 2, 8)}
        )
    with pytest.raises(ValueError, match=r"noise\['u_y'\]"):
        HF.sampling_argmax(
            torch.zeros(1, 1, 4, 4),
            1.0,
            2,
            noise={"gumbel_u": torch.rand(1, 1, 2, 16), "u_x": torch.rand(1, 1, 2, 4)},
        )
    with pytest.raises(ValueError, match="max_ratio"):
        HF.debiased_soft_argmax(torch.zeros(1, 1, 4, 4), max_ratio=1.0)
    with pytest.raises(ValueError, match="variant must be one of"):
        HF.sampling_argmax(torch.zeros(1, 1, 4, 4), variant="concrete")
    with pytest.raises(ValueError, match="variant must be one of"):
        HF.debiased_soft_argmax(torch.zeros(1, 1, 4, 4), variant="official")
    with pytest.raises(ValueError, match="num_samples"):
        HF.sampling_argmax(torch.zeros(1, 1, 4, 4), num_samples=0)
    with pytest.raises(ValueError, match="sizes"):
        HF.gaussian_heatmaps(torch.zeros(1, 1, 2), (4,), 1.0)
