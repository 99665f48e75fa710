"""rle.apis (init_model, inference_topdown) and rle.visualization: models from self-describing
checkpoints and from configs, results identical to the estimator's predict on the dataset's own
crops of the real COCO sample (GT and detection boxes), whole-image and empty box lists,
intervals from the head's density, heads without one, 3-D depth, the pose-model protocol,
named errors, and the visualiser's pixels."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate

from rle.apis import PoseResult, inference_topdown, init_model, model_interval_scale
from rle.registry import MODELS
from rle.serialization import CheckpointMismatchError
from rle.visualization import draw_pose, draw_results, keypoint_colors

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "coco_sample"
needs_sample = pytest.mark.skipif(not SAMPLE.is_dir(), reason="shared COCO sample absent")
INPUT_SIZE = (48, 64)
SYNTH_CONFIG = ROOT / "configs" / "synthcoco" / "rle_resnet18_1xb32-20e_synthcoco-128x96.py"


def tiny_cfg(head: dict = None) -> dict:
    head = head or dict(type="RLEHead", num_keypoints=17)
    return dict(
        type="TopdownPoseEstimator",
        backbone=dict(type="TimmBackbone", model_name="test_resnet"),
        head=head,
        test_cfg=dict(flip_test=True),
    )


def write_checkpoint(path: Path, head: dict = None, meta: dict = None, seed: int = 0) -> Path:
    """A self-describing checkpoint of the tiny model (as every training run here writes)."""
    torch.manual_seed(seed)
    cfg = tiny_cfg(head)
    model = MODELS.build(cfg)
    info = {"rle_pose": {"model": cfg, "input_size": list(INPUT_SIZE), "convention": "rle"}}
    torch.save({"meta": {**info, **(meta or {})}, "state_dict": model.state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny_rle.pth")


@pytest.fixture(scope="module")
def model(ckpt):
    return init_model(checkpoint=ckpt)


def _dataset(bbox_file=None, **kwargs):
    from rle.datasets.coco import CocoKeypointDataset

    pipeline = [
        dict(type="LoadImage"),
        dict(type="GetBBoxCenterScale", padding=1.25),
        dict(type="TopdownAffine", input_size=INPUT_SIZE),
        dict(type="PackPoseInputs"),
    ]
    return CocoKeypointDataset(ann_file="test_coco.json", data_root=str(SAMPLE), test_mode=True,
                               bbox_file=bbox_file, pipeline=pipeline, **kwargs)  # fmt: skip


# -- init_model --------------------------------------------------------------------------------
def test_init_model_from_self_describing_checkpoint(ckpt, model):
    saved = torch.load(ckpt, weights_only=True)["state_dict"]
    own = model.state_dict()
    assert saved.keys() == own.keys() and all(torch.equal(saved[k], own[k]) for k in saved)
    assert not model.training and model.convention == "rle" and model.test_cfg["flip_test"]
    assert model.test_pipeline == [
        dict(type="GetBBoxCenterScale", padding=1.25),
        dict(type="TopdownAffine", input_size=INPUT_SIZE),
        dict(type="PackPoseInputs"),
    ]
    meta = model.dataset_meta  # no dataset_meta in the file, K = 17: COCO's
    assert meta["keypoint_names"][1] == "left_eye" and meta["flip_indices"][1] == 2
    assert (15, 13) in meta["skeleton_links"]  # COCO's 1-based (16, 14), 0-based


def test_init_model_dataset_meta(tmp_path):
    names = [f"j{i}" for i in range(16)] + ["left_x"]
    saved = dict(keypoint_names=names, skeleton_links=[(0, 1)], flip_indices=list(range(17)))
    m = init_model(checkpoint=write_checkpoint(tmp_path / "a.pth", meta={"dataset_meta": saved}))
    assert m.dataset_meta["keypoint_names"] == names
    assert m.dataset_meta["skeleton_links"] == [(0, 1)]
    five = write_checkpoint(tmp_path / "b.pth", head=dict(type="RegressionHead", num_keypoints=5))
    meta = init_model(checkpoint=five).dataset_meta
    assert meta["keypoint_names"] == ["k0", "k1", "k2", "k3", "k4"]
    assert meta["flip_indices"] == [0, 1, 2, 3, 4] and meta["skeleton_links"] == []
    bad = write_checkpoint(tmp_path / "c.pth", meta={"dataset_meta": dict(keypoint_names=["a"])})
    with pytest.raises(ValueError, match="names 1 keypoints, the model has 17"):
        init_model(checkpoint=bad)


def test_init_model_from_config(tmp_path):
    from rle.engine import load_config

    opts = {"model.backbone.model_name": "test_resnet"}
    built = init_model(SYNTH_CONFIG, cfg_options=opts)
    types = [t["type"] for t in built.test_pipeline]  # LoadImage, EncodeKeypoints dropped
    assert types == ["GetBBoxCenterScale", "TopdownAffine", "PackPoseInputs"]
    assert built.test_pipeline[1]["input_size"] == (96, 128)
    path = tmp_path / "plain.pth"
    torch.save({"state_dict": built.state_dict()}, path)  # not self-describing: needs the config
    again = init_model(load_config(SYNTH_CONFIG, cfg_options=opts), path)
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in built.state_dict().items())
    with pytest.raises(ValueError, match="not a self-describing"):
        init_model(checkpoint=path)
    # the config's pixel convention reaches the model and the samples
    mm = init_model(SYNTH_CONFIG, path, cfg_options={**opts, "convention": "mmpose"})
    assert mm.convention == "mmpose"
    image = np.full((120, 90, 3), 128, np.uint8)
    assert len(inference_topdown(mm, image, interval_level=None)) == 1


def test_init_model_errors(tmp_path, ckpt):
    with pytest.raises(ValueError, match="pass a config, a checkpoint"):
        init_model()
    with pytest.raises(FileNotFoundError):
        init_model(checkpoint=tmp_path / "missing.pth")
    with pytest.raises(TypeError, match="mmengine Config"):
        init_model(config=dict(model=tiny_cfg()), checkpoint=ckpt)
    with pytest.raises(ValueError, match="device"):
        init_model(checkpoint=ckpt, device="no-such-device")
    other = write_checkpoint(
        tmp_path / "reg.pth", head=dict(type="RegressionHead", num_keypoints=17)
    )
    state = torch.load(other, weights_only=True)["state_dict"]
    torch.save({"meta": torch.load(ckpt, weights_only=True)["meta"], "state_dict": state}, other)
    with pytest.raises(CheckpointMismatchError, match="missing keys"):
        init_model(checkpoint=other)


# -- inference_topdown against the estimator ---------------------------------------------------
def _reference(model, samples):
    """The estimator's predict on the dataset's own packed samples."""
    with torch.no_grad():
        data = model.data_preprocessor(pseudo_collate(samples), False)
        return model.predict(data["inputs"], data["data_samples"])


@needs_sample
@pytest.mark.parametrize("boxes", ["gt", "detections"])
def test_results_equal_estimator_predict_on_dataset_crops(model, boxes):
    # the detections scored 0.3 and above (of 118: the test's time goes to the crops)
    dets = dict(bbox_file="test_coco_det_AP_H_56.json", bbox_score_thr=0.3)
    dataset = _dataset(**(dets if boxes == "detections" else {}))
    by_image = {}
    for i in range(len(dataset)):
        by_image.setdefault(dataset.get_data_info(i)["img_path"], []).append(dataset[i])
    assert len(by_image) == 4
    for path, packed in by_image.items():
        expected = _reference(model, packed)
        bboxes = np.stack([p["data_samples"].bbox for p in packed])
        scores = np.array([p["data_samples"].bbox_score for p in packed])
        results = inference_topdown(model, path, bboxes, bbox_scores=scores, interval_level=None)
        assert len(results) == len(expected)
        for r, e in zip(results, expected):
            assert isinstance(r, PoseResult)
            np.testing.assert_array_equal(r.bbox, e.bbox)
            np.testing.assert_array_equal(r.keypoints, e.pred_keypoints)
            np.testing.assert_array_equal(r.keypoint_scores, e.pred_scores)
            sigma_px = (e.pred_sigma.astype(np.float64) * e.input_scale).astype(np.float32)
            np.testing.assert_array_equal(r.keypoint_sigma, sigma_px)
            assert r.bbox_score == pytest.approx(float(e.bbox_score))
            assert r.interval_axes is None and r.keypoint_depth is None


@needs_sample
def test_gt_boxes_in_xywh_and_arrays_give_the_same(model):
    from rle.datasets.coco import load_coco

    coco = load_coco(str(SAMPLE / "test_coco.json"))
    img = coco.dataset["images"][0]
    xywh = np.array([a["bbox"] for a in coco.imgToAnns[img["id"]]], dtype=np.float64)
    xyxy = np.c_[xywh[:, :2], xywh[:, :2] + xywh[:, 2:]]
    path = SAMPLE / img["file_name"]
    a = inference_topdown(model, path, xywh, "xywh", interval_level=None)
    b = inference_topdown(model, cv2.imread(str(path)), xyxy.tolist(), interval_level=None)
    for r, s in zip(a, b):
        np.testing.assert_array_equal(r.keypoints, s.keypoints)
    # batching keeps the order; other batch sizes agree to float rounding
    one = inference_topdown(model, path, xyxy, batch_size=1, interval_level=None)
    for r, s in zip(a, one):
        np.testing.assert_allclose(r.keypoints, s.keypoints, atol=1e-3)


@needs_sample
def test_no_boxes_is_the_whole_image_and_empty_is_nothing(model):
    path = SAMPLE / "000000040083.jpg"
    image = cv2.imread(str(path))
    h, w = image.shape[:2]
    (whole,) = inference_topdown(model, path, interval_level=None)
    np.testing.assert_array_equal(whole.bbox, [0, 0, w, h])
    assert whole.bbox_score == 1.0 and whole.keypoints.shape == (17, 2)
    (same,) = inference_topdown(model, image, [[0, 0, w, h]], interval_level=None)
    np.testing.assert_array_equal(whole.keypoints, same.keypoints)
    assert inference_topdown(model, path, np.zeros((0, 4))) == []
    assert inference_topdown(model, path, []) == []


def test_interval_axes_from_the_learned_density(model, monkeypatch):
    image = np.random.default_rng(0).integers(0, 255, (80, 60, 3), dtype=np.uint8)
    (r,) = inference_topdown(model, image, [[5, 5, 50, 70]], interval_level=0.9)
    k = model_interval_scale(model, 0.9)  # the head's own, computed once per model and level
    assert 0.1 < k < 10 and r.interval_level == 0.9
    np.testing.assert_allclose(r.interval_axes, k * r.keypoint_sigma, rtol=1e-6)
    assert r.to_dict()["interval_axes"] == r.interval_axes.tolist()

    def boom(levels):
        raise AssertionError("interval_scale recomputed")

    monkeypatch.setattr(model.head, "interval_scale", boom)  # cached: not asked again
    (again,) = inference_topdown(model, image, [[5, 5, 50, 70]], interval_level=0.9)
    np.testing.assert_array_equal(again.interval_axes, r.interval_axes)


def test_head_without_density_and_3d_head(tmp_path):
    image = np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    reg_head = dict(type="RegressionHead", num_keypoints=17)
    reg = init_model(checkpoint=write_checkpoint(tmp_path / "reg.pth", head=reg_head))
    (r,) = inference_topdown(reg, image)
    assert r.keypoint_sigma is None and r.interval_axes is None and r.interval_level is None
    np.testing.assert_array_equal(r.keypoint_scores, np.ones(17, np.float32))
    deep_head = dict(type="RLEHead", num_keypoints=17, num_dims=3)
    deep = init_model(checkpoint=write_checkpoint(tmp_path / "rle3d.pth", head=deep_head))
    assert deep.dataset_meta["dataset_name"] == "h36m"  # 3-D, K = 17: Human3.6M's joints
    (d,) = inference_topdown(deep, image, [[0, 0, 64, 64]])
    assert d.keypoint_depth.shape == (17,) and np.isfinite(d.keypoint_depth).all()
    assert d.keypoint_sigma.shape == (17, 2) and d.interval_axes is None  # no 3-D density yet


class _Protocol:
    """Only the pose-model protocol (what an exported model provides), delegating."""

    def __init__(self, model, scale) -> None:
        self._model = model
        self._scale = scale
        for name in ("dataset_meta", "test_pipeline", "convention", "test_cfg"):
            setattr(self, name, getattr(model, name))

    def data_preprocessor(self, data, training):
        return self._model.data_preprocessor(data, training)

    def predict(self, inputs, data_samples):
        return self._model.predict(inputs, data_samples)

    def interval_scale(self, levels):
        return {float(lv): self._scale for lv in levels}


def test_a_model_with_the_protocol_runs_unchanged(model):
    image = np.random.default_rng(2).integers(0, 255, (50, 70, 3), dtype=np.uint8)
    boxes = [[0, 0, 40, 50], [10, 5, 70, 45]]
    plain = inference_topdown(model, image, boxes, interval_level=None)
    duck = inference_topdown(_Protocol(model, 2.0), image, boxes, interval_level=0.5)
    for r, s in zip(plain, duck):
        np.testing.assert_array_equal(r.keypoints, s.keypoints)
        np.testing.assert_allclose(s.interval_axes, 2.0 * r.keypoint_sigma, rtol=1e-6)


# -- named errors ------------------------------------------------------------------------------
IMAGE = np.zeros((40, 30, 3), np.uint8)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(image=np.zeros((40, 30), np.uint8)), ValueError, r"\(H, W, 3\).*shape \(40, 30\)"),
        (dict(image=np.zeros((40, 30, 3), np.float32)), TypeError, "dtype float32"),
        (dict(image=[[0]]), TypeError, "got list"),
        (dict(image="/no/such/image.jpg"), FileNotFoundError, "image file not found"),
        (dict(bboxes=np.zeros((2, 5))), ValueError, r"\(N, 4\).*\(2, 5\)"),
        (dict(bboxes=[[0, 0, np.nan, 5]]), ValueError, "box 0 is not finite"),
        (dict(bboxes=[[0, 0, 5, 5], [0, 0, np.inf, 5]]), ValueError, "box 1 is not finite"),
        (dict(bboxes=[[10, 0, 5, 5]]), ValueError, "box 0 .* non-positive width or height"),
        (dict(bboxes=[[1, 1, 0, 5]], bbox_format="xywh"), ValueError, r"xywh.*\[1.0, 1.0, 0.0"),
        (dict(bboxes=[["a", 0, 1, 1]]), TypeError, "array of numbers"),
        (dict(bbox_format="cxcywh"), ValueError, "bbox_format must be one of"),
        (dict(bbox_scores=[1.0, 2.0]), ValueError, "bbox_scores must be 1 finite"),
        (dict(batch_size=0), ValueError, "batch_size"),
        (dict(interval_level=1.5), ValueError, "interval_level"),
    ],
)
def test_bad_inputs_raise_named_errors(model, kwargs, error, match):
    kwargs = {"image": IMAGE, **kwargs}
    with pytest.raises(error, match=match):
        inference_topdown(model, **kwargs)


def test_unreadable_image_files_and_models(tmp_path, model):
    data = cv2.imencode(".jpg", np.full((32, 32, 3), 90, np.uint8))[1].tobytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.jpg.*truncated JPEG"):
        inference_topdown(model, tmp_path / "cut.jpg")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(ValueError, match="text.png.*not a decodable image"):
        inference_topdown(model, str(tmp_path / "text.png"))
    with pytest.raises(TypeError, match="model lacks 'dataset_meta'"):
        inference_topdown(torch.nn.Linear(2, 2), IMAGE)


# -- the visualiser ----------------------------------------------------------------------------
def test_draw_pose_pixels():
    canvas = np.zeros((32, 32, 3), np.uint8)
    kpts = np.array([[10.0, 12.0], [20.0, 12.0], [5.0, 5.0]])
    out = draw_pose(canvas, kpts, [0.9, 0.9, 0.1], skeleton=[(0, 1), (1, 2)], colors=(0, 0, 255),
                    link_color=(0, 255, 0), radius=2, thickness=1, antialias=False)  # fmt: skip
    assert canvas.max() == 0  # a copy
    assert out[12, 10].tolist() == [0, 0, 255] and out[12, 20].tolist() == [0, 0, 255]
    assert out[12, 15].tolist() == [0, 255, 0]  # the link between them
    assert out[14, 10].tolist() == [0, 0, 255] and out[15, 10].tolist() == [0, 0, 0]  # radius 2
    assert out[5, 5].tolist() == [0, 0, 0] and out[8, 12].tolist() == [0, 0, 0]  # score 0.1
    assert set(map(tuple, out.reshape(-1, 3))) == {(0, 0, 0), (0, 0, 255), (0, 255, 0)}


def test_draw_pose_ellipse_extent():
    canvas = np.zeros((40, 40, 3), np.uint8)
    out = draw_pose(canvas, [[20.0, 18.0]], interval_axes=[[9.0, 4.0]], radius=1,
                    ellipse_color=(255, 255, 0), thickness=1, antialias=False)  # fmt: skip
    ys, xs = np.nonzero((out == (255, 255, 0)).all(-1))
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (11, 29, 14, 22)
    assert out[18, 20].tolist() == list(keypoint_colors(1)[0])  # the keypoint on top


def test_draw_results_and_colours():
    canvas = np.zeros((30, 30, 3), np.uint8)
    result = dict(bbox=[2, 3, 12, 20], keypoints=np.full((17, 2), np.nan), keypoint_scores=None)
    out = draw_results(canvas, [result])
    assert out[3, 2:12].tolist() == [[0, 255, 0]] * 10 and out[19, 11].tolist() == [0, 255, 0]
    assert out[20, 12].tolist() == [0, 0, 0] and out[10, 6].tolist() == [0, 0, 0]
    side = keypoint_colors(3, flip_indices=[0, 2, 1])
    assert side[1].tolist() != side[2].tolist() and side[0].tolist() != side[1].tolist()
    score = keypoint_colors(2, np.array([0.3, 1.0]), color_by="score", score_thr=0.3)
    assert score.tolist() == [[0, 0, 255], [0, 255, 0]]
    with pytest.raises(ValueError, match=r"keypoints must have shape \(K, 2\)"):
        draw_pose(canvas, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="skeleton link"):
        draw_pose(canvas, np.zeros((2, 2)), skeleton=[(0, 5)])
    with pytest.raises(TypeError, match="uint8"):
        draw_pose(canvas.astype(np.float32), np.zeros((2, 2)))
