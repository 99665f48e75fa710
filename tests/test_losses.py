"""RLE loss variants and coordinate losses: golden parity, gradients, numerics, validation."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rle.flow import RealNVP, to_reference_state_dict
from rle.losses import RLELoss, coordinate_loss, rle_confidence, rle_loss
from tests.conftest import TOL, assert_close, decimal64, golden_flows

DTYPES = [torch.float32, torch.float64]


def _setup(golden, dtype):
    exp = golden["expected_float32" if dtype == torch.float32 else "expected_float64"]
    cast = (lambda t: t.float()) if dtype == torch.float32 else decimal64
    inputs = {k: cast(v) for k, v in golden["inputs"].items()}
    return (exp, inputs, *golden_flows(golden, dtype))


def _run(inputs, flow, suffix="2d", weight=None, **kw):
    pred = inputs[f"pred_{suffix}"].clone().requires_grad_()
    logits = inputs[f"sigma_logits_{suffix}"].clone().requires_grad_()
    w = inputs[f"weight_{suffix}"] if weight is None else weight
    out = rle_loss(pred, logits, inputs[f"target_{suffix}"], flow, w, **kw)
    out.loss.backward()
    return out, pred.grad, logits.grad


def _flow_grads(flow):
    grads = {name: p.grad for name, p in flow.named_parameters()}
    grads.update({name: b for name, b in flow.named_buffers() if name.endswith("mask")})
    return to_reference_state_dict(grads)


@pytest.mark.parametrize("dtype", DTYPES)
def test_official_2d(rle_golden, dtype):
    exp, inputs, f2, _ = _setup(rle_golden, dtype)
    out, g_pred, g_logits = _run(inputs, f2)
    tol = TOL[dtype]
    assert_close(out.loss, exp["official_2d_loss"], **tol)
    assert_close(out.nf_term, exp["official_2d_loss_nf_part"], **tol)
    assert_close(out.q_term, exp["official_2d_loss_q_part"], **tol)
    assert_close(out.log_phi, exp["official_2d_log_phi"], **tol)
    assert_close(g_pred, exp["official_2d_grad_pred"], **tol)
    assert_close(g_logits, exp["official_2d_grad_sigma_logits"], **tol)
    grads = _flow_grads(f2)
    for name, expected in exp["official_2d_grad_flow"].items():
        assert_close(grads[name], expected, **tol)
    score = rle_confidence(torch.sigmoid(inputs["sigma_logits_2d"])).unsqueeze(-1)
    assert_close(score, exp["official_2d_score"], **tol)
    total = rle_loss(
        inputs["pred_2d"],
        inputs["sigma_logits_2d"],
        inputs["target_2d"],
        f2,
        inputs["weight_2d"],
        reduction="sum",
    ).loss
    assert_close(total, exp["official_2d_loss_no_size_average"], **tol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("q", ["laplace", "gaussian"])
def test_mmpose(rle_golden, dtype, q):
    exp, inputs, f2, _ = _setup(rle_golden, dtype)
    weight = inputs["weight_2d"][..., :1]  # MMPose weights are (B, K, 1)
    out, g_pred, g_logits = _run(inputs, f2, weight=weight, variant="mmpose", q=q)
    assert_close(out.loss, exp[f"mmpose_{q}_loss"], **TOL[dtype])
    assert_close(g_pred, exp[f"mmpose_{q}_grad_pred"], **TOL[dtype])
    assert_close(g_logits, exp[f"mmpose_{q}_grad_sigma_logits"], **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_mmpose_dle_and_paper(rle_golden, dtype):
    exp, inputs, f2, _ = _setup(rle_golden, dtype)
    dle, _, _ = _run(
        inputs, f2, weight=inputs["weight_2d"][..., :1], variant="mmpose", residual=False
    )
    assert_close(dle.loss, exp["mmpose_dle_loss"], **TOL[dtype])
    assert dle.q_term.item() == 0.0
    paper, _, _ = _run(inputs, f2, variant="paper")
    assert_close(paper.loss, exp["variant_single_logphi_laplace_loss"], **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_official_3d_with_2d_only_rows(rle_golden, dtype):
    exp, inputs, f2, f3 = _setup(rle_golden, dtype)
    out, g_pred, g_logits = _run(inputs, f3, suffix="3d", flow_2d=f2)
    assert_close(out.loss, exp["official_3d_loss"], **TOL[dtype])
    assert_close(out.log_phi, exp["official_3d_log_phi"], **TOL[dtype])
    assert_close(g_pred, exp["official_3d_grad_pred"], **TOL[dtype])
    assert_close(g_logits, exp["official_3d_grad_sigma_logits"], **TOL[dtype])


def test_module_matches_function(rle_golden):
    exp, inputs, f2, f3 = _setup(rle_golden, torch.float32)
    module = RLELoss(3, use_2d_flow_for_2d_joints=True)
    module.flow.load_state_dict(f3.state_dict())
    module.flow_2d.load_state_dict(f2.state_dict())
    out = module(
        inputs["pred_3d"], inputs["sigma_logits_3d"], inputs["target_3d"], inputs["weight_3d"]
    )
    assert_close(out.loss, exp["official_3d_loss"], **TOL[torch.float32])


def test_hand_computed_paper_value():
    # identity flow (zero weights): log phi(u) = log N(u; 0, I); one joint, D = 2
    flow = RealNVP(2).double()
    for p in flow.parameters():
        torch.nn.init.zeros_(p)
    pred = torch.tensor([[[0.1, -0.2]]], dtype=torch.float64)
    target = torch.zeros_like(pred)
    logits = torch.zeros_like(pred)  # sigma = 0.5
    out = rle_loss(pred, logits, target, flow, variant="paper", q="laplace")
    u = torch.tensor([0.2, -0.4], dtype=torch.float64)
    expected = (
        2 * math.log(0.5)
        + 2 * math.log(2)
        + u.abs().sum()
        + 0.5 * (u**2).sum()
        + math.log(2 * math.pi)
    )
    assert out.loss.item() == pytest.approx(expected.item(), abs=1e-12)


def test_negative_loss_is_normal():
    flow = RealNVP(2)
    pred = torch.zeros(4, 17, 2)
    logits = torch.full_like(pred, -6.0)  # sigma ~ 0.0025: sharp density
    out = rle_loss(pred, logits, pred + 1e-3, flow)
    assert out.loss.item() < 0


@pytest.mark.parametrize("variant", ["official", "mmpose", "paper"])
@pytest.mark.parametrize("q", ["laplace", "gaussian"])
def test_gradcheck(variant, q):
    torch.manual_seed(0)
    flow = RealNVP(2, hidden_features=8, num_layers=2, init="torch_default").double()
    pred = (torch.rand(2, 3, 2, dtype=torch.float64) - 0.5).requires_grad_()
    logits = torch.randn(2, 3, 2, dtype=torch.float64).requires_grad_()
    target = torch.rand(2, 3, 2, dtype=torch.float64) - 0.5
    weight = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 0.5]], dtype=torch.float64)

    def fn(p, s):
        return rle_loss(p, s, target, flow, weight, variant=variant, q=q).loss

    assert torch.autograd.gradcheck(fn, (pred, logits))


@settings(max_examples=40, deadline=None)
@given(
    logit=st.floats(-200, 200),
    residual=st.floats(-1.0, 1.0),
    variant=st.sampled_from(["official", "mmpose", "paper"]),
    q=st.sampled_from(["laplace", "gaussian"]),
    dims=st.sampled_from([2, 3]),
)
def test_finite_for_extreme_sigma_logits(logit, residual, variant, q, dims):
    flow = RealNVP(dims, init="torch_default")
    pred = torch.full((1, 2, dims), residual, requires_grad=True)
    logits = torch.full((1, 2, dims), logit, requires_grad=True)
    out = rle_loss(pred, logits, torch.zeros(1, 2, dims), flow, variant=variant, q=q)
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert torch.isfinite(pred.grad).all() and torch.isfinite(logits.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in flow.parameters())


def test_reductions_and_weights():
    torch.manual_seed(0)
    flow = RealNVP(2)
    pred, logits, target = torch.randn(3, 4, 2) * 0.1, torch.randn(3, 4, 2), torch.zeros(3, 4, 2)
    weight = torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0.5]], dtype=torch.float32)
    per_joint = rle_loss(pred, logits, target, flow, weight, reduction="none").loss
    assert per_joint.shape == (3, 4)
    assert (per_joint[weight == 0] == 0).all()
    batchmean = rle_loss(pred, logits, target, flow, weight).loss
    mean = rle_loss(pred, logits, target, flow, weight, reduction="mean").loss
    torch.testing.assert_close(batchmean, per_joint.sum() / 3)
    torch.testing.assert_close(mean, per_joint.sum() / 3.5)
    # all weights zero: 0, not NaN, still differentiable
    p = pred.clone().requires_grad_()
    zero = rle_loss(p, logits, target, flow, torch.zeros(3, 4), reduction="mean").loss
    zero.backward()
    assert zero.item() == 0.0 and torch.isfinite(p.grad).all()
    # (B, K), (B, K, 1) and (B, K, D) weights agree
    for w in (weight, weight.unsqueeze(-1), weight.unsqueeze(-1).expand(3, 4, 2)):
        torch.testing.assert_close(rle_loss(pred, logits, target, flow, w).loss, batchmean)


def test_fp32_under_autocast():
    flow = RealNVP(2)
    pred = torch.randn(2, 3, 2, dtype=torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = rle_loss(pred, torch.zeros_like(pred), torch.zeros_like(pred), flow)
    assert out.loss.dtype == torch.float32


def test_bad_input():
    flow = RealNVP(2)
    x = torch.zeros(2, 3, 2)
    with pytest.raises(ValueError, match="variant"):
        rle_loss(x, x, x, flow, variant="rle")
    with pytest.raises(ValueError, match="q must be"):
        rle_loss(x, x, x, flow, q="cauchy")
    with pytest.raises(ValueError, match="reduction"):
        rle_loss(x, x, x, flow, reduction="avg")
    with pytest.raises(ValueError, match=r"pred must have shape \(B, K, D\)"):
        rle_loss(torch.zeros(2, 6), x, x, flow)
    with pytest.raises(ValueError, match=r"sigma_logits must have the shape of pred"):
        rle_loss(x, torch.zeros(2, 4, 2), x, flow)
    with pytest.raises(ValueError, match="target_weight"):
        rle_loss(x, x, x, flow, torch.ones(2, 4))
    with pytest.raises(ValueError, match="flow has 2 features but pred has D=3"):
        rle_loss(torch.zeros(2, 3, 3), torch.zeros(2, 3, 3), torch.zeros(2, 3, 3), flow)
    with pytest.raises(TypeError, match="target"):
        rle_loss(x, x, [0.0], flow)
    with pytest.raises(ValueError, match="num_dims"):
        RLELoss(4)


# -- coordinate_loss ---------------------------------------------------------------------------
def test_coordinate_loss_exact_values_and_gradients():
    pred = torch.tensor([[[0.1, -0.2], [0.0, 0.3]]], dtype=torch.float64, requires_grad=True)
    target = torch.tensor([[[0.0, 0.0], [0.1, 0.1]]], dtype=torch.float64)
    weight = torch.tensor([[1.0, 0.5]], dtype=torch.float64)
    l1 = coordinate_loss(pred, target, weight, kind="l1")
    assert l1.item() == pytest.approx(0.1 + 0.2 + 0.5 * (0.1 + 0.2))
    l1.backward()
    assert pred.grad.tolist() == [[[1.0, -1.0], [-0.5, 0.5]]]
    l2 = coordinate_loss(pred, target, weight, kind="l2")
    assert l2.item() == pytest.approx(0.01 + 0.04 + 0.5 * (0.01 + 0.04))
    euc = coordinate_loss(pred, target, weight, kind="euclidean", reduction="mean")
    assert euc.item() == pytest.approx((math.sqrt(0.05) + 0.5 * math.sqrt(0.05)) / 1.5)
    smooth = coordinate_loss(pred, target, kind="smooth_l1", smooth_l1_beta=0.15)
    assert smooth.item() == pytest.approx(
        0.5 * 0.01 / 0.15 + (0.2 - 0.075) + 0.5 * 0.01 / 0.15 + (0.2 - 0.075)
    )


def test_coordinate_loss_samples_average_over_s():
    target = torch.zeros(1, 1, 2)
    samples = torch.tensor([[[[1.0, 0.0], [0.0, 3.0]]]])  # (B, K, S=2, D)
    assert coordinate_loss(samples, target).item() == pytest.approx(2.0)
    with pytest.raises(ValueError, match=r"\(B, K, S, D\)"):
        coordinate_loss(torch.zeros(1, 2, 2), target)
    with pytest.raises(ValueError, match="kind"):
        coordinate_loss(target, target, kind="huber")


# -- the density each variant implies ---------------------------------------------------------
VARIANT_CASES = [
    (v, q, r) for v in ("official", "mmpose", "paper") for q in ("laplace", "gaussian")
    for r in (True, False)
]


def _identity_flow(dtype=torch.float32):
    flow = RealNVP(features=2).to(dtype)
    for p in flow.parameters():
        torch.nn.init.zeros_(p)  # s = t = 0: the identity, phi = N(0, I)
    return flow


@pytest.mark.parametrize("variant,q,residual", VARIANT_CASES)
def test_residual_log_density_is_the_negative_loss_up_to_a_constant(variant, q, residual):
    """At fixed sigma, rle_loss(mu = target + sigma u) + residual_log_density(u) does not
    depend on u: the density is exactly what the loss is a negative log of."""
    from rle.losses import residual_log_density

    torch.manual_seed(0)
    flow = RealNVP(features=2).double()
    u = torch.randn(64, 2, dtype=torch.float64) * 1.5
    logits = torch.full((64, 1, 2), -1.3, dtype=torch.float64)
    sigma = torch.sigmoid(logits)
    target = torch.zeros(64, 1, 2, dtype=torch.float64)
    pred = target + sigma * u[:, None, :]
    loss = rle_loss(pred, logits, target, flow, variant=variant, q=q, residual=residual,
                    reduction="none").loss[:, 0]  # fmt: skip
    total = loss + residual_log_density(u, flow, variant=variant, q=q, residual=residual)
    assert float((total.max() - total.min()).detach()) < 1e-6


def test_residual_log_density_hand_computed():
    from rle.losses import residual_log_density

    flow = _identity_flow(torch.float64)
    u = torch.tensor([[0.5, -1.0]], dtype=torch.float64)
    log_n = -math.log(2 * math.pi) - 0.5 * (0.25 + 1.0)  # log N(u; 0, I)
    cases = {
        ("official", "laplace", True): 2 * log_n - 1.5 / math.sqrt(2),
        ("mmpose", "laplace", True): 2 * log_n - 1.5,
        ("paper", "laplace", True): log_n - 1.5,
        ("official", "gaussian", True): 2 * log_n - 0.625,
        ("paper", "laplace", False): log_n,
    }
    for (variant, q, residual), expected in cases.items():
        got = residual_log_density(u, flow, variant=variant, q=q, residual=residual).detach()
        assert float(got) == pytest.approx(expected, abs=1e-12), (variant, q, residual)
    with pytest.raises(ValueError, match="variant"):
        residual_log_density(u, flow, variant="nope")
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        residual_log_density(u[0], flow)
    with pytest.raises(ValueError, match="features"):
        residual_log_density(torch.zeros(1, 3), flow)


# every factor that changes the density once: m (paper vs not), the Q family and its scale
QUANTILE_CASES = [
    ("official", "laplace", True),
    ("official", "gaussian", True),
    ("mmpose", "laplace", True),
    ("paper", "laplace", True),
    ("paper", "gaussian", False),
    ("official", "laplace", False),
]


@pytest.mark.parametrize("variant,q,residual", QUANTILE_CASES)
def test_residual_quantiles_match_numerical_integration(variant, q, residual):
    """Identity flow: the implied density factorises into ``exp(-m u^2 / 2) q(u)`` per
    coordinate; its quantiles from scipy's quadrature agree with the grid's."""
    from scipy import integrate, optimize

    from rle.losses import residual_quantiles

    m = 1 if variant == "paper" else 2

    def density(x):
        out = -m * x * x / 2
        if residual:
            if q == "gaussian":
                out -= x * x / 2
            else:
                out -= abs(x) / (math.sqrt(2) if variant == "official" else 1.0)
        return math.exp(out)

    mass = integrate.quad(density, 0, 50)[0]

    def quantile(level):
        cdf = lambda k: integrate.quad(density, 0, k)[0] / mass - level  # noqa: E731
        return optimize.brentq(cdf, 1e-9, 50)

    levels = (0.5, 0.68, 0.95)
    flow = _identity_flow()
    quantiles = residual_quantiles(flow, levels, variant=variant, q=q, residual=residual,
                                   grid_size=401)  # fmt: skip
    assert set(quantiles) == set(levels)
    for level in levels:
        assert quantiles[level] == pytest.approx(quantile(level), abs=0.06), level


def test_loss_module_quantiles_use_its_variant():
    from rle.losses import residual_quantiles

    loss = RLELoss(num_dims=2, variant="mmpose", q="gaussian")
    expected = residual_quantiles(loss.flow, (0.68,), variant="mmpose", q="gaussian")
    assert loss.residual_quantiles((0.68,)) == expected
    assert expected != residual_quantiles(loss.flow, (0.68,), variant="paper", q="gaussian")


def test_residual_quantiles_bad_input():
    from rle.losses import residual_quantiles

    flow = _identity_flow()
    for levels in ([], [0.0], [1.2]):
        with pytest.raises(ValueError, match="levels"):
            residual_quantiles(flow, levels)
    with pytest.raises(ValueError, match="2-D flow"):
        residual_quantiles(RealNVP(features=3))


def test_flow_marginal_density_of_the_identity_is_normal():
    from scipy.stats import norm

    from rle.losses import flow_marginal_density

    grid = torch.linspace(-3, 3, 13).numpy()
    dens = flow_marginal_density(_identity_flow(), grid)
    assert dens == pytest.approx(norm.pdf(grid), abs=1e-5)
    with pytest.raises(ValueError, match="2-D flow"):
        flow_marginal_density(RealNVP(features=3), grid)


def test_residual_quantiles_resolve_a_spike_in_wide_tails():
    """97 % of the mass in a spike 500x narrower than the tails: the quantiles are the
    mixture's (scipy root of its CDF), not 0 (a uniform grid sized to the tails put the whole
    spike in the cell at 0 and returned 0 for every level)."""
    from scipy import optimize
    from scipy.stats import norm

    from rle.losses import residual_quantiles
    from tests.conftest import SpikyFlow

    flow = SpikyFlow(weight=0.97, scale=0.002)

    def quantile(level):  # P(|u_x| <= k) of the marginal mixture
        cdf = lambda k: 0.97 * (2 * norm.cdf(k / 0.002) - 1) + 0.03 * (2 * norm.cdf(k) - 1)  # noqa: E731
        return optimize.brentq(lambda k: cdf(k) - level, 1e-12, 50)

    levels = (0.5, 0.68, 0.95)
    got = residual_quantiles(flow, levels, variant="paper", residual=False)
    for level in levels:
        assert got[level] == pytest.approx(quantile(level), rel=0.01), level
    assert got[0.5] < 0.002 < got[0.95]
