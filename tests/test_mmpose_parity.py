"""Image-space parity with MMPose 1.3.2 and the official RLE code on the real COCO sample.

The golden checkpoints written by the real MMPose code, converted (rle.converters) and run
through this project's own dataset, transforms and estimator in MMPose's pixel convention,
give MMPose's own test predictions (``expected_mmpose_*.pt``: GT and detection boxes, flip test
on and off). Skipped when ../shared is absent."""

import copy
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate

from rle.converters import convert_checkpoint, from_mmpose, from_official
from rle.coords import to_frame
from rle.datasets.coco import COCO_KEYPOINT_NAMES, CocoKeypointDataset, flip_indices_from_names
from rle.datasets.transforms import keypoints_to_image
from rle.registry import MODELS

SHARED = Path(__file__).resolve().parents[2] / "shared"
INTEROP = SHARED / "golden" / "interop"
SAMPLE = SHARED / "data" / "coco_sample"
pytestmark = pytest.mark.skipif(
    not (INTEROP.is_dir() and SAMPLE.is_dir()), reason="shared golden interop / COCO sample absent"
)
MODELS_ = ["rle_res18n", "rle_res50n", "ipr_res18n", "dsnt_res18n"]
RUNS = ["gt_flip", "gt_noflip", "det_flip", "det_noflip"]
PIPELINE = [
    dict(type="LoadImage"),
    dict(type="GetBBoxCenterScale", padding=1.25),
    dict(type="TopdownAffine", input_size=(192, 256)),
    dict(type="PackPoseInputs"),
]


def _require_goldens_opencv():
    # the goldens' crops come from OpenCV 5.0's warpAffine; 5.1 rounds bilinear weights differently
    # (one grey level in 1e-4 of the pixels, up to 0.05 image px on the RLE models), which is not a
    # conversion error, so another version is told apart from a parity failure
    if not cv2.__version__.startswith("5.0."):
        pytest.fail(
            f"image-space parity needs OpenCV 5.0.x (the goldens' cv2.warpAffine), found "
            f"cv2 {cv2.__version__}: pip install -e '.[dev]' holds it there"
        )


def _dataset(run, convention, **kwargs):
    # the published protocol: GT boxes clipped, keypoint-less instances dropped in test mode
    boxes = (
        dict(bbox_file="test_coco_det_AP_H_56.json")
        if run.startswith("det")
        else dict(filter_empty=True, clip_bbox=True)
    )
    return CocoKeypointDataset(
        ann_file="test_coco.json", data_root=str(SAMPLE), test_mode=True, pipeline=PIPELINE,
        convention=convention, **boxes, **kwargs,
    )  # fmt: skip


def _predict(model, dataset):
    batch = pseudo_collate([dataset[i] for i in range(len(dataset))])
    data = model.data_preprocessor(batch)
    with torch.no_grad():
        return {s.id: s for s in model.predict(data["inputs"], data["data_samples"])}


def _model(conv, flip, **overrides):
    cfg = copy.deepcopy(conv.model)
    cfg["test_cfg"] = dict(cfg["test_cfg"], flip_test=flip)
    cfg.update(overrides)
    model = MODELS.build(cfg)
    model.load_state_dict(conv.state_dict, strict=True)
    return model.eval()


@pytest.fixture(scope="module")
def conversions():
    return {
        name: from_mmpose(
            torch.load(INTEROP / f"mmpose_{name}.pth", map_location="cpu", weights_only=False)
        )
        for name in MODELS_
    }


@pytest.mark.parametrize("run", RUNS)
@pytest.mark.parametrize("name", MODELS_)
def test_converted_mmpose_checkpoints_give_mmposes_predictions(conversions, name, run):
    _require_goldens_opencv()
    expected = torch.load(INTEROP / f"expected_mmpose_{name}.pt", weights_only=True)["results"][run]
    model = _model(conversions[name], flip=run.endswith("_flip"))
    out = _predict(model, _dataset(run, "mmpose"))
    ids = expected["ids"].tolist()
    assert sorted(out) == sorted(ids)  # the same instances (12 GT after filtering, 118 det)
    for key, field in (("bbox", "bbox"), ("input_center", "input_center"),
                       ("input_scale", "input_scale")):  # fmt: skip
        ours = np.stack([np.asarray(out[i].get(field), dtype=np.float32) for i in ids])
        assert np.array_equal(ours, expected[key].numpy()), key  # bit-identical boxes
    keypoints = np.stack([out[i].pred_keypoints for i in ids])
    scores = np.stack([out[i].pred_scores for i in ids])
    assert np.abs(keypoints - expected["keypoints"].numpy()).max() < 1e-3  # image px
    assert np.abs(scores - expected["keypoint_scores"].numpy()).max() < 1e-5
    if "sigma" in expected:
        sigma = np.stack([out[i].pred_sigma for i in ids])
        assert np.abs(sigma - expected["sigma"].numpy()).max() < 1e-5


@pytest.mark.parametrize("name", ["rle_res18n", "ipr_res18n"])
def test_our_convention_decodes_the_same_crop_points_by_the_documented_offset(conversions, name):
    """On MMPose's own crops, decoding the same network output with our convention instead of
    MMPose's moves every keypoint by ``0.5 (s/n - 1)`` image px per axis (s the box size, n
    the crop size); heatmap heads add their grid's 0.5 (stride - 1) crop px."""
    expected = torch.load(INTEROP / f"expected_mmpose_{name}.pt", weights_only=True)
    crops = torch.load(INTEROP / "mmpose_val_crops.pt", weights_only=True)
    run = expected["results"]["gt_noflip"]
    model = _model(conversions[name], flip=False)
    inputs = crops["crops_bgr_uint8"].float()
    data = model.data_preprocessor(dict(inputs=list(inputs), data_samples=None))
    with torch.no_grad():
        coords = model.head.predict(model.extract_feat(data["inputs"])).coords.numpy()
    rows = [run["ids"].tolist().index(i) for i in crops["ids"].tolist()]
    size = np.array([192.0, 256.0])
    for b, row in enumerate(rows):
        center = crops["input_center"][b].numpy()
        scale = crops["input_scale"][b].numpy()
        mm = keypoints_to_image(coords[b], size, center, scale, convention="mmpose")
        assert np.abs(mm - run["keypoints"][row].numpy()).max() < 1e-3  # MMPose's own output
        # our pipeline's centre of the same box is MMPose's minus half a pixel
        ours = keypoints_to_image(coords[b], size, center - 0.5, scale, convention="rle")
        offset = 0.5 * (scale.astype(np.float64) / size - 1)
        assert np.abs((ours - mm) - offset).max() < 1e-3


def test_official_flip_test_without_the_sigma_swap_is_an_option():
    state = torch.load(INTEROP / "official_rle_res18n.pth", weights_only=True)
    expected = torch.load(INTEROP / "expected_official_rle.pt", weights_only=True)
    conv = from_official(state)
    flip = expected["flip_test"]
    idx = flip_indices_from_names(COCO_KEYPOINT_NAMES)
    for swap in (True, False):
        model = _model(conv, flip=True)
        model.test_cfg["flip_swap_sigma"] = swap
        with torch.no_grad():
            coords, scores, sigma = model._predict_tensors(expected["inputs"], idx)
        assert (to_frame(coords, (192, 256), "rle") - flip["pred_jts"]).abs().max() < 1e-6
        reference = (sigma - flip["sigma"]).abs().max()
        assert (reference < 1e-6) == (not swap), float(reference)
        # its scores (maxvals) are swapped: the option changes sigma only
        assert (scores - flip["maxvals"][..., 0]).abs().max() < 1e-6


def test_a_converted_checkpoint_evaluates_without_a_config(tmp_path):
    """``tools/test.py DST``: the self-describing checkpoint builds its model and convention."""
    from tools import test as tool

    dst = tmp_path / "rle_res18n_rle-pose.pth"
    convert_checkpoint(INTEROP / "mmpose_rle_res18n.pth", dst, source="mmpose")
    metrics = tool.main([
        str(dst), "--data-root", str(SAMPLE), "--work-dir", str(tmp_path / "work"),
        "--cfg-options", "test_dataloader.dataset.ann_file=test_coco.json",
        "test_dataloader.dataset.bbox_file=test_coco_det_AP_H_56.json",
        "test_dataloader.dataset.data_prefix.img=", "test_dataloader.num_workers=0",
        "test_dataloader.persistent_workers=False", "test_dataloader.batch_size=16",
        "test_evaluator.score_mode=bbox_rle",
    ])  # fmt: skip
    expected = torch.load(INTEROP / "expected_mmpose_rle_res18n.pt", weights_only=True)
    mm = expected["results"]["det_flip"]["metrics"]
    assert metrics["coco/AP"] == pytest.approx(mm["coco/AP"], abs=5e-5)
    assert metrics["coco/num_instances"] == 118


@pytest.mark.parametrize("run", ["gt_flip", "gt_noflip"])
def test_inference_api_on_a_converted_checkpoint_gives_mmposes_predictions(tmp_path, run):
    """``init_model(DST)`` alone (the converted checkpoint carries its model, MMPose's
    convention and test config) and ``inference_topdown`` on the sample's image files and
    boxes give MMPose's own keypoints and scores."""
    _require_goldens_opencv()

    from rle.apis import inference_topdown, init_model

    dst = tmp_path / "rle_res18n_rle-pose.pth"
    convert_checkpoint(INTEROP / "mmpose_rle_res18n.pth", dst, source="mmpose")
    flip = run.endswith("_flip")
    model = init_model(checkpoint=str(dst), cfg_options={"model.test_cfg.flip_test": flip})
    assert model.convention == "mmpose" and model.test_cfg["flip_test"] is flip
    expected = torch.load(INTEROP / "expected_mmpose_rle_res18n.pt", weights_only=True)
    expected = expected["results"][run]
    dataset = _dataset(run, "mmpose")
    rows = {int(i): r for r, i in enumerate(expected["ids"].tolist())}
    by_image = {}
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        by_image.setdefault(info["img_path"], []).append(rows[int(info["id"])])
    assert sum(map(len, by_image.values())) == len(rows)
    checked = 0
    for img_path, instances in by_image.items():
        boxes = expected["bbox"][instances].numpy().reshape(-1, 4)
        # both the file and the decoded array: the same crops
        for image in (img_path, cv2.imread(img_path)):
            results = inference_topdown(model, image, boxes)
            keypoints = np.stack([r.keypoints for r in results])
            scores = np.stack([r.keypoint_scores for r in results])
            assert np.abs(keypoints - expected["keypoints"][instances].numpy()).max() < 1e-3
            assert np.abs(scores - expected["keypoint_scores"][instances].numpy()).max() < 1e-5
            sigma_px = np.stack([r.keypoint_sigma for r in results])
            scale = expected["input_scale"][instances].numpy()[:, None]
            want = expected["sigma"][instances].numpy() * scale
            assert np.abs(sigma_px - want).max() < 1e-3
        checked += len(instances)
    assert checked == 12


def test_inference_api_refuses_an_unconverted_mmpose_checkpoint():
    from rle.apis import init_model
    from rle.serialization import CheckpointMismatchError

    src = INTEROP / "mmpose_rle_res18n.pth"
    with pytest.raises(ValueError, match="convert_checkpoint.py .* --from mmpose"):
        init_model(checkpoint=str(src))
    config = "configs/coco/mmpose-compat/rle-gap_resnet50_8xb64-210e_coco-256x192.py"
    root = Path(__file__).resolve().parents[1]
    with pytest.raises(CheckpointMismatchError, match="unexpected keys: backbone.conv1.weight"):
        init_model(config=str(root / config), checkpoint=str(src))
