"""RealNVP on nflows: golden parity, state-dict conversion, invertibility, initialisation."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from mmengine.model import BaseModule
from nflows.flows.base import Flow
from nflows.transforms.base import CompositeTransform

from rle.flow import (
    RealNVP,
    coupling_masks,
    from_reference_state_dict,
    to_reference_state_dict,
)
from rle.losses import RLELoss
from tests.conftest import TOL, assert_close, decimal64, golden_flows


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_golden_flow_outputs(rle_golden, dtype):
    exp = rle_golden["expected_float32" if dtype == torch.float32 else "expected_float64"]
    f2, f3 = golden_flows(rle_golden, dtype)
    x = rle_golden["inputs"]["flow_x"]
    x = x.float() if dtype == torch.float32 else decimal64(x)
    z, logdet = f2(x)
    assert_close(z, exp["flow2d_z"], **TOL[dtype])
    assert_close(logdet, exp["flow2d_logdet"], **TOL[dtype])
    assert_close(f2.log_prob(x), exp["flow2d_log_prob"], **TOL[dtype])
    assert_close(f3.log_prob(exp["flow3d_x"].to(dtype)), exp["flow3d_log_prob"], **TOL[dtype])


def test_built_on_nflows():
    flow = RealNVP(2)
    assert isinstance(flow, Flow)
    assert isinstance(flow._transform, CompositeTransform)
    assert sum(p.numel() for p in flow.parameters()) == 53784  # the reference count
    masks = coupling_masks(3, 6)
    assert masks[0].tolist() == [0, 0, 1] and masks[1].tolist() == [1, 1, 0]


def test_state_dict_conversion_both_directions(rle_golden):
    ref = rle_golden["flow2d_state_dict"]
    flow = RealNVP(2)
    flow.load_reference_state_dict(ref)
    back = flow.reference_state_dict("official")
    assert list(back) == list(ref)
    for key in ref:
        assert torch.equal(back[key], ref[key]), key
    mm = flow.reference_state_dict(variant="mmpose")
    assert set(mm) == set(rle_golden["flow2d_state_dict_mmpose"])
    torch.testing.assert_close(mm["cov"], torch.eye(2))
    # MMPose keys, and a whole checkpoint under MMPose 1.x's prefix
    other = RealNVP(2)
    prefixed = {"head.loss_module.flow_model." + k: v for k, v in mm.items()}
    prefixed["backbone.conv1.weight"] = torch.zeros(1)
    other.load_reference_state_dict(prefixed, prefix="head.loss_module.flow_model.")
    x = torch.randn(16, 2)
    torch.testing.assert_close(other.log_prob(x), flow.log_prob(x))
    # 3-D, official full-model prefix
    f3 = RealNVP(3)
    sd3 = {"flow3d." + k: v for k, v in rle_golden["flow3d_state_dict"].items()}
    f3.load_reference_state_dict(sd3, prefix="flow3d.")
    assert torch.equal(
        to_reference_state_dict(f3.state_dict())["s.0.0.weight"],
        rle_golden["flow3d_state_dict"]["s.0.0.weight"],
    )


def test_state_dict_conversion_errors(rle_golden):
    ref = dict(rle_golden["flow2d_state_dict"])
    with pytest.raises(ValueError, match="mask"):
        from_reference_state_dict({k: v for k, v in ref.items() if k != "mask"})
    with pytest.raises(ValueError, match="unexpected key 'q.0.0.weight'"):
        from_reference_state_dict({**ref, "q.0.0.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="loc"):
        from_reference_state_dict({**ref, "loc": torch.ones(2)})
    with pytest.raises(ValueError, match="num_layers=4"):
        from_reference_state_dict(ref, num_layers=4)
    with pytest.raises(ValueError, match="variant must be one of"):
        to_reference_state_dict(RealNVP(2).state_dict(), variant="nflows")


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    scale=st.floats(0.01, 20.0),
    features=st.sampled_from([2, 3]),
)
def test_forward_inverse_identity(seed, scale, features):
    torch.manual_seed(seed)
    flow = RealNVP(features, init="torch_default").double()
    x = torch.randn(32, features, dtype=torch.float64) * scale
    z, logdet = flow(x)
    x_back, logdet_inv = flow.inverse(z)
    torch.testing.assert_close(x_back, x, rtol=1e-9, atol=1e-9 * scale)
    torch.testing.assert_close(logdet + logdet_inv, torch.zeros_like(logdet), rtol=0, atol=1e-9)


def test_logdet_matches_jacobian():
    torch.manual_seed(0)
    flow = RealNVP(2, init="torch_default").double()
    x = torch.tensor([0.3, -1.2], dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda v: flow(v.unsqueeze(0))[0][0], x)
    _, logdet = flow(x.unsqueeze(0))
    torch.testing.assert_close(logdet[0], torch.linalg.slogdet(jac).logabsdet)


def test_gradcheck_log_prob():
    torch.manual_seed(1)
    flow = RealNVP(2, hidden_features=8, num_layers=2, init="torch_default").double()
    x = torch.randn(5, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(flow.log_prob, (x,))


def test_near_identity_init_starts_as_standard_normal():
    flow = RealNVP(2)
    x = torch.randn(100, 2)
    z, logdet = flow(x)
    assert (z - x).abs().max() < 1e-2
    assert logdet.abs().max() < 1e-2


class _Parent(BaseModule):
    def __init__(self):
        super().__init__(init_cfg=dict(type="Normal", layer="Linear", std=0.01, bias=0))
        self.fc = torch.nn.Linear(4, 4)
        self.loss_module = RLELoss(2)


def test_flow_keeps_its_init_under_mmengine_parent_init():
    torch.manual_seed(0)
    parent = _Parent()
    parent.init_weights()
    # the parent's own Linear was re-drawn from N(0, 0.01^2)...
    assert 0.003 < parent.fc.weight.std().item() < 0.03
    lin = parent.loss_module.flow.couplings[0].s[2]
    # ...the flow's 64x64 weights keep Xavier gain 0.01 (std ~0.0012), biases zero
    assert 0.0008 < lin.weight.std().item() < 0.0016
    assert parent.loss_module.flow.couplings[0].s[0].bias.abs().max().item() == 0.0


def test_flow_keeps_torch_default_init_under_parent():
    parent = _Parent()
    parent.loss_module = RLELoss(2, flow_cfg=dict(init="torch_default"))
    parent.init_weights()
    lin = parent.loss_module.flow.couplings[0].s[2]
    # PyTorch default: U(-1/8, 1/8) for fan_in 64 -> std 0.072, nowhere near N(0, 0.01)
    assert 0.05 < lin.weight.std().item() < 0.09


def test_bad_input():
    flow = RealNVP(2)
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        flow.log_prob(torch.zeros(3, 3))
    with pytest.raises(TypeError, match="inputs"):
        flow.log_prob([[0.0, 0.0]])
    with pytest.raises(ValueError, match="init"):
        RealNVP(2, init="xavier")
    with pytest.raises(ValueError, match="features"):
        RealNVP(1)
