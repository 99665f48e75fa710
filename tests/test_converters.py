"""Checkpoint converters: MMPose and official-RLE layouts to rle-pose and back. On the golden
checkpoints written by the real MMPose and official code (skipped when ../shared is absent):
the converted model reproduces their crop-space outputs; everywhere: round trips are the
identity and anything unconvertible is an error."""

from pathlib import Path

import pytest
import torch

from rle.converters import (
    detect_layout,
    from_mmpose,
    from_official,
    infer_resnet,
    to_mmpose,
    to_official,
)
from rle.coords import to_frame
from rle.registry import MODELS

INTEROP = Path(__file__).resolve().parents[2] / "shared" / "golden" / "interop"
needs_interop = pytest.mark.skipif(not INTEROP.is_dir(), reason="shared golden interop absent")
SIZE = (192, 256)


def _build(conv):
    model = MODELS.build(conv.model)
    model.load_state_dict(conv.state_dict, strict=True)  # every tensor fits, nothing left out
    return model.eval()


def _mmpose(name):
    return torch.load(INTEROP / f"mmpose_{name}.pth", map_location="cpu", weights_only=False)


@needs_interop
@pytest.mark.parametrize("name", ["rle_res18n", "rle_res50n"])
def test_mmpose_rle_reproduces_mmpose_head_outputs(name):
    ckpt = _mmpose(name)
    conv = from_mmpose(ckpt)
    assert conv.input_size == SIZE and conv.convention == "mmpose"
    assert conv.model["head"]["normalize_feats"] is False
    assert conv.model["head"]["loss_cfg"] == dict(variant="mmpose")
    assert conv.model["backbone"]["channels"] == (16, 32, 64, 128)
    assert {k for k, _ in conv.mapping} == set(ckpt["state_dict"])
    probe = torch.load(INTEROP / f"expected_mmpose_{name}.pt", weights_only=True)["probe"]
    with torch.no_grad():
        out = _build(conv).head(probe["head_input"][:, :, None, None])
    raw = probe["head_raw"]
    mm = to_frame(out.coords, SIZE, "mmpose")  # MMPose regresses u / n
    assert (mm - raw[..., :2]).abs().max() * 256 < 1e-4  # crop px
    assert (out.sigma - raw[..., 2:].sigmoid()).abs().max() < 1e-6
    back = to_mmpose(conv)
    assert set(back) == set(ckpt["state_dict"])
    for key, value in ckpt["state_dict"].items():
        assert torch.allclose(back[key].float(), value.float(), atol=1e-7), key


@needs_interop
@pytest.mark.parametrize(
    "name,head", [("ipr_res18n", "SoftArgmaxHead"), ("dsnt_res18n", "DSNTHead")]
)
def test_mmpose_integral_heads_reproduce_mmpose_maps(name, head):
    ckpt = _mmpose(name)
    conv = from_mmpose(ckpt)
    assert conv.model["head"]["type"] == head
    assert conv.model["head"]["deconv_channels"] == (32, 32)
    probe = torch.load(INTEROP / f"expected_mmpose_{name}.pt", weights_only=True)["probe"]
    with torch.no_grad():
        out = _build(conv).head(probe["head_input"])
    assert torch.equal(out.heatmaps, probe["head_heatmaps"])
    # on MMPose's grid (grid="mmpose"), in MMPose's frame of the 192x256 crop (u / n) and of
    # the 32x24 map (j / m): the same point
    assert conv.model["head"]["grid"] == "mmpose"
    mm = to_frame(out.coords, SIZE, "mmpose")
    assert (mm - probe["head_coords"]).abs().max() < 1e-6
    back = to_mmpose(conv)  # the grid buffers are rebuilt exactly
    assert set(back) == set(ckpt["state_dict"])
    assert all(torch.equal(back[k], v) for k, v in ckpt["state_dict"].items())


@needs_interop
def test_official_rle_reproduces_the_official_outputs():
    state = torch.load(INTEROP / "official_rle_res18n.pth", weights_only=True)
    expected = torch.load(INTEROP / "expected_official_rle.pt", weights_only=True)
    conv = from_official(state)
    assert conv.model["head"]["normalize_feats"] is True and conv.convention == "rle"
    model = _build(conv)
    with torch.no_grad():
        feats = model.backbone.model(expected["inputs"])[-1]
        out = model.head(feats)
    assert torch.equal(feats, expected["outputs"]["feat_map"])
    assert (to_frame(out.coords, SIZE, "rle") - expected["outputs"]["pred_jts"]).abs().max() < 1e-6
    assert (out.sigma - expected["outputs"]["sigma"]).abs().max() < 1e-6
    back = to_official(conv)
    assert set(back) == set(state)
    assert all(torch.allclose(back[k], v, atol=1e-6) for k, v in state.items())
    assert (
        detect_layout(state) == "official"
        and detect_layout(_mmpose("ipr_res18n")["state_dict"]) == "mmpose"
    )


def _ours(head, model_name="resnet18"):
    backbone = dict(type="TimmBackbone", model_name=model_name, channels=(8, 16, 16, 32))
    cfg = dict(type="TopdownPoseEstimator", backbone=backbone, head=dict(head, num_keypoints=3))
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    return cfg, {k: v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v
                 for k, v in model.state_dict().items()}  # fmt: skip


@pytest.mark.parametrize("model_name", ["resnet18", "resnet50"])
def test_round_trips_are_the_identity(model_name):
    from rle.converters import Conversion

    for head, to, back in (
        (dict(type="RLEHead", normalize_feats=False, loss_cfg=dict(variant="mmpose")), to_mmpose,
         from_mmpose),
        (dict(type="RLEHead", normalize_feats=True, loss_cfg=dict(variant="official")), to_official,
         from_official),
        (dict(type="SoftArgmaxHead", deconv_channels=(8, 8)), to_mmpose, from_mmpose),
    ):  # fmt: skip
        cfg, state = _ours(head, model_name)
        conv = Conversion(state, cfg, SIZE, "rle", [])
        again = (
            back({"state_dict": to(conv)}, SIZE) if back is from_mmpose else back(to(conv), SIZE)
        )
        assert infer_resnet(again.state_dict, "backbone.model.")["model_name"] == model_name
        extra = {k for k in state if "flow" in k and k not in again.state_dict}
        assert set(again.state_dict) | extra == set(state)
        for key, value in again.state_dict.items():
            assert torch.allclose(value, state[key], atol=1e-6), key
        _build(again)


def test_unconvertible_checkpoints_are_errors():
    cfg, state = _ours(dict(type="RLEHead", normalize_feats=False, loss_cfg=dict(variant="mmpose")))
    from rle.converters import Conversion

    mm = to_mmpose(Conversion(state, cfg, SIZE, "rle", []))
    with pytest.raises(ValueError, match="not converted.*head.extra"):
        from_mmpose({"state_dict": {**mm, "head.extra": torch.zeros(1)}}, SIZE)
    with pytest.raises(ValueError, match="input_size"):
        from_mmpose({"state_dict": mm})
    with pytest.raises(ValueError, match="not an MMPose"):
        from_mmpose(
            {"state_dict": {k: v for k, v in mm.items() if k.startswith("backbone.")}}, SIZE
        )
    with pytest.raises(ValueError, match="not a ResNet"):
        infer_resnet({"conv1.weight": torch.zeros(64, 3, 7, 7)})
    with pytest.raises(ValueError, match="no official layout|normalize_feats=True"):
        to_official(Conversion(state, cfg, SIZE, "rle", []))
    assert detect_layout(state) is None


def test_tool_writes_a_self_describing_checkpoint(tmp_path):
    import importlib.util

    from rle.converters import Conversion

    spec = importlib.util.spec_from_file_location(
        "convert_checkpoint",
        Path(__file__).resolve().parents[1] / "tools" / "convert_checkpoint.py",
    )
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    cfg, state = _ours(
        dict(type="RLEHead", normalize_feats=True, loss_cfg=dict(variant="official"))
    )
    src = tmp_path / "official.pth"
    torch.save(to_official(Conversion(state, cfg, SIZE, "rle", [])), src)
    conv = tool.main([str(src), str(tmp_path / "ours.pth"), "--from", "official"])
    saved = torch.load(tmp_path / "ours.pth", weights_only=True)
    info = saved["meta"]["rle_pose"]
    assert info["model"] == conv.model and info["convention"] == "rle"
    assert info["input_size"] == [192, 256] and info["converted_from"]["layout"] == "official"
    model = MODELS.build(info["model"])
    model.load_state_dict(saved["state_dict"], strict=True)
    tool.main([str(tmp_path / "ours.pth"), str(tmp_path / "back.pth"), "--to", "official"])
    back = torch.load(tmp_path / "back.pth", weights_only=True)
    assert set(back) == set(torch.load(src, weights_only=True))
    with pytest.raises(SystemExit, match="convert_checkpoint: .*meta"):
        tool.main([str(src), str(tmp_path / "x.pth"), "--to", "mmpose"])  # not one of ours


@needs_interop
def test_strict_loading_suggests_the_converter_for_a_reference_layout():
    from rle.serialization import CheckpointMismatchError, check_state_dict

    cfg, state = _ours(dict(type="RLEHead"))
    ckpt = _mmpose("rle_res18n")
    with pytest.raises(CheckpointMismatchError, match="--from mmpose"):
        check_state_dict(state, ckpt, "mmpose_rle_res18n.pth")
    with pytest.raises(CheckpointMismatchError) as err:
        check_state_dict(state, {"state_dict": {"x": torch.zeros(1)}}, "other.pth")
    assert "convert_checkpoint" not in str(err.value)
