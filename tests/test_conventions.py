"""Pixel conventions (rle.datasets.geometry): MMPose's crop geometry next to ours, set once in a
config (rle.engine.apply_convention) and carried into self-describing checkpoints."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rle.datasets.geometry import (
    box_center,
    check_convention,
    fix_aspect_ratio,
    flip_center_x,
    get_warp_matrix,
    warp_points,
)
from rle.datasets.transforms import GetBBoxCenterScale, RandomFlip, TopdownAffine
from tests.test_training import ROOT, _tiny

SIZE = (192, 256)


def test_box_centres_and_flips_by_hand():
    box = [10.0, 20.0, 30.0, 60.0]
    assert box_center(box).tolist() == [19.5, 39.5]  # pixel edges -> index units
    assert box_center(box, "mmpose").tolist() == [20.0, 40.0]
    assert box_center(box, "mmpose").dtype == np.float32
    # mirroring a 100-px image: index units W-1-x, MMPose's centres W-x: the same box
    assert flip_center_x(19.5, 100) == 79.5 and flip_center_x(20.0, 100, "mmpose") == 80.0
    assert fix_aspect_ratio((30.0, 40.0), 0.75, "mmpose").tolist() == [30.0, 40.0]
    assert fix_aspect_ratio((40.0, 40.0), 0.75, "mmpose").dtype == np.float32
    with pytest.raises(ValueError, match="convention must be one of"):
        check_convention("official")


def test_mmpose_warp_maps_the_centre_to_the_crop_middle_by_hand():
    mat = get_warp_matrix((100.0, 50.0), (96.0, 128.0), 0.0, SIZE, convention="mmpose")
    # zoom 2, the centre at (w/2, h/2) (ours: ((w-1)/2, (h-1)/2))
    assert np.allclose(mat, [[2.0, 0.0, 96.0 - 200.0], [0.0, 2.0, 128.0 - 100.0]], atol=1e-4)
    ours = get_warp_matrix((100.0, 50.0), (96.0, 128.0), 0.0, SIZE)
    assert np.allclose(ours[:, 2] - mat[:, 2], [-0.5, -0.5], atol=1e-4)


@settings(max_examples=40, deadline=None)
@given(
    cx=st.floats(0, 640), cy=st.floats(0, 480), bw=st.floats(8, 600),
    rotation=st.floats(-60, 60), w=st.sampled_from([48, 192, 256]),
)  # fmt: skip
def test_mmpose_warp_is_ours_with_the_centre_moved_half_a_crop_pixel(cx, cy, bw, rotation, w):
    """Property: MMPose's warp of centre c equals ours of ``c - R^-1 (0.5, 0.5) / zoom`` (the
    crop middle moved by half a crop pixel), for any box and rotation; its inverse inverts it."""
    h = w * 4 // 3
    scale = (bw, bw * h / w)
    mm = get_warp_matrix((cx, cy), scale, rotation, (w, h), convention="mmpose")
    zoom = w / bw
    t = math.radians(rotation)
    rot = np.array([[math.cos(t), math.sin(t)], [-math.sin(t), math.cos(t)]])
    moved = np.array([cx, cy]) - np.linalg.solve(rot, np.array([0.5, 0.5])) / zoom
    ours = get_warp_matrix(moved, scale, rotation, (w, h))
    points = np.array([[cx, cy], [cx + 10, cy - 7], [0.0, 0.0]])
    tol = 2e-3 * max(1.0, zoom) + 1e-4 * max(abs(cx), abs(cy)) * zoom  # float32 points
    assert np.abs(warp_points(points, mm) - warp_points(points, ours)).max() < tol
    inv = get_warp_matrix((cx, cy), scale, rotation, (w, h), inv=True, convention="mmpose")
    crop = warp_points(points, mm)
    assert np.abs(warp_points(crop, inv) - points).max() < 1e-2


def _sample(**extra):
    img = np.zeros((60, 100, 3), np.uint8)
    img[:, 40:45] = 255
    return dict(
        img=img, img_shape=(60, 100), bbox=np.array([30.0, 10.0, 70.0, 50.0], np.float32),
        keypoints=np.array([[42.0, 30.0]]), keypoints_visible=np.array([1.0]), flip_indices=[0],
        **extra,
    )  # fmt: skip


@pytest.mark.parametrize("convention", ["rle", "mmpose"])
def test_a_flipped_crop_is_the_mirror_only_in_our_convention(convention):
    crop = TopdownAffine((48, 64))(GetBBoxCenterScale()(_sample(convention=convention)))
    flipped = RandomFlip(prob=1.0)(GetBBoxCenterScale()(_sample(convention=convention)))
    flipped = TopdownAffine((48, 64))(flipped)
    assert crop["convention"] == flipped["convention"] == convention
    u = crop["transformed_keypoints"][0, 0]
    if convention == "rle":  # the mirrored image's crop is the crop mirrored
        assert np.array_equal(flipped["img"], crop["img"][:, ::-1])
        assert flipped["transformed_keypoints"][0, 0] == pytest.approx(47 - u, abs=1e-9)
    else:  # MMPose's lands (1 - zoom) crop px right of the mirror (zoom = 48 / 50 here)
        shift = flipped["transformed_keypoints"][0, 0] - (47 - u)
        assert shift == pytest.approx(1 - 48 / 50, abs=1e-4)


def test_the_two_conventions_crop_apart_and_a_transform_cannot_disagree():
    rle = TopdownAffine((48, 64))(GetBBoxCenterScale()(_sample()))
    mm = TopdownAffine((48, 64))(GetBBoxCenterScale()(_sample(convention="mmpose")))
    # MMPose's box centre is 0.5 image px right (and down) and lands 0.5 crop px right of ours
    assert np.allclose(mm["input_center"] - rle["input_center"], [0.5, 0.5])
    zoom = 48 / 50.0
    shift = mm["transformed_keypoints"][0] - rle["transformed_keypoints"][0]
    assert np.allclose(shift, 0.5 - 0.5 * zoom, atol=1e-4)
    with pytest.raises(ValueError, match="set the convention once"):
        GetBBoxCenterScale(convention="rle")(_sample(convention="mmpose"))


def test_apply_convention_sets_datasets_model_and_heatmap_grid_once(tmp_path):
    from rle.engine import load_config

    path = ROOT / "configs" / "coco" / "mmpose-compat" / "ipr_resnet50_8xb64-210e_coco-256x256.py"
    cfg = load_config(path, work_dir=str(tmp_path))
    for key in ("train_dataloader", "val_dataloader", "test_dataloader"):
        assert cfg[key].dataset.convention == "mmpose"
    assert cfg.model.convention == "mmpose"
    assert cfg.model.head.grid == "mmpose" and tuple(cfg.model.head.input_size) == (256, 256)
    rle = load_config(ROOT / "configs" / "coco" / "ipr_resnet50_8xb32-270e_coco-256x192.py")
    assert "convention" not in rle.model and "grid" not in rle.model.head  # ours: untouched
    with pytest.raises(ValueError, match="set the pixel convention once"):
        load_config(path, cfg_options={"test_dataloader.dataset.convention": "rle"})


def test_a_model_refuses_samples_cropped_in_another_convention():
    from mmengine.structures import BaseDataElement

    from rle.registry import MODELS

    model = MODELS.build(
        dict(
            type="TopdownPoseEstimator",
            backbone=dict(type="TimmBackbone", model_name="test_resnet"),
            head=dict(type="RegressionHead", num_keypoints=1),
            convention="mmpose",
        )
    ).eval()
    sample = BaseDataElement(metainfo=dict(id=7, input_center=(1, 1), input_scale=(2, 2)))
    with pytest.raises(ValueError, match=r"sample 7: its crop was made in the 'rle'"):
        model.predict(torch.zeros(1, 3, 64, 48), [sample])
    with pytest.raises(ValueError, match="grid='mmpose'"):
        MODELS.build(
            dict(
                type="TopdownPoseEstimator",
                backbone=dict(type="TimmBackbone", model_name="test_resnet"),
                head=dict(type="SoftArgmaxHead", num_keypoints=1, deconv_channels=(8,)),
                convention="mmpose",
            )
        )


@pytest.mark.parametrize(
    "leaf,marker",
    [
        ("rle-gap_resnet50_8xb64-210e_coco-256x192.py", "RLEHead"),
        ("ipr_resnet50_8xb64-210e_coco-256x256.py", "IntegralRegressionHead"),
        ("dsnt_resnet50_8xb64-210e_coco-256x256.py", "DSNTHead"),
    ],
)
def test_the_mmpose_compat_configs_fit_converted_mmpose_checkpoints(tmp_path, leaf, marker):
    """A checkpoint in MMPose's layout of the published architecture (ResNet-50 at full width)
    converts to exactly the state dict and model config of the compat config."""
    from rle.converters import Conversion, from_mmpose, to_mmpose
    from rle.engine import load_config
    from rle.registry import MODELS

    cfg = load_config(ROOT / "configs" / "coco" / "mmpose-compat" / leaf, work_dir=str(tmp_path))
    model = MODELS.build(cfg.model.to_dict())
    size = tuple(cfg.test_dataloader.dataset.pipeline[2].input_size)
    state = to_mmpose(Conversion(model.state_dict(), cfg.model.to_dict(), size, "mmpose", []))
    text = f"codec = dict(input_size=({size[0]}, {size[1]}))\nhead=dict(type='{marker}')"
    conv = from_mmpose({"meta": {"cfg": text}, "state_dict": state})
    model.load_state_dict(conv.state_dict, strict=True)
    ours, theirs = cfg.model.to_dict(), conv.model
    assert theirs["head"]["type"] == ours["head"]["type"]
    assert theirs["convention"] == ours["convention"] == "mmpose"
    assert theirs["backbone"]["model_name"] == ours["backbone"]["model_name"] == "resnet50"
    for key in ("grid", "input_size", "keypoint_scores", "normalize_feats", "loss_cfg"):
        if key in theirs["head"]:
            assert tuple(np.atleast_1d(theirs["head"][key])) == tuple(
                np.atleast_1d(ours["head"][key])
            ), key


def test_trained_checkpoints_are_self_describing_and_evaluate_without_a_config(tmp_path):
    from rle.checkpoint import read_model_metadata
    from rle.engine import config_from_checkpoint, load_config, test, train

    leaf = ROOT / "configs" / "synthcoco" / "regression-l1_resnet18_1xb32-20e_synthcoco-128x96.py"
    opts = _tiny(leaf, tmp_path)
    cfg = load_config(leaf, work_dir=str(tmp_path / "work"), cfg_options=opts)
    train(cfg)
    ckpt = tmp_path / "work" / "epoch_1.pth"
    info = read_model_metadata(torch.load(ckpt, map_location="cpu", weights_only=False))
    assert info["convention"] == "rle" and info["input_size"] == [96, 128]
    assert info["model"]["head"] == cfg.model.head.to_dict()
    with_config = test(load_config(leaf, work_dir=str(tmp_path / "t1"), cfg_options=opts), ckpt)
    dataset = ROOT / "configs" / "_base_" / "datasets" / "synthcoco-128x96.py"
    data_opts = {k: v for k, v in opts.items() if k.startswith(("test_", "data_root"))}
    alone = config_from_checkpoint(
        ckpt, dataset_config=dataset, cfg_options=data_opts, work_dir=str(tmp_path / "t2")
    )
    assert test(alone, ckpt) == pytest.approx(with_config, nan_ok=True)
    with pytest.raises(ValueError, match="not a self-describing"):
        bare = tmp_path / "bare.pth"
        torch.save({"state_dict": {}}, bare)
        config_from_checkpoint(bare, dataset_config=dataset)
