"""tools/infer.py (rle.apis.infer_files): a folder of the real COCO sample with its GT boxes,
with detections matched by id (through the annotation file and by numeric file stem), one image
on the whole frame, a 5-frame video; results.json loads into pycocotools and evaluates; the
annotated images and the video are written; a config instead of a self-describing checkpoint;
named errors."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from heads.rle_mixin import RLELossMixin
from rle.apis import infer_files, init_model
from tests.test_apis import SAMPLE, SYNTH_CONFIG, needs_sample, write_checkpoint
from tests.test_training import _tool as _load_tool

GT = SAMPLE / "test_coco.json"
DETS = SAMPLE / "test_coco_det_AP_H_56.json"


@pytest.fixture(autouse=True)
def fast_intervals(monkeypatch):
    # the real interval scale integrates the flow on a fine grid (seconds; tests/test_apis.py
    # checks it): every tool run builds a new model, so here it is a constant
    monkeypatch.setattr(
        RLELossMixin, "interval_scale", lambda self, levels: {lv: 1.5 for lv in levels}
    )


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny_rle.pth")


def _tool(*args) -> object:
    return _load_tool("infer").main([str(a) for a in args] + ["--no-progress"])


def _evaluate(results_file: Path) -> list:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(GT))
        dt = gt.loadRes(str(results_file))
        ev = COCOeval(gt, dt, "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return list(ev.stats)


@needs_sample
def test_folder_with_gt_boxes(tmp_path, ckpt):
    out = tmp_path / "out"
    summary = _tool(SAMPLE, "--checkpoint", ckpt, "--ann-file", GT, "--out", out)
    coco = json.loads(GT.read_text())
    boxes = [a for a in coco["annotations"] if not a.get("iscrowd") and min(a["bbox"][2:]) > 0]
    assert summary.num_images == 4 and summary.num_instances == len(boxes)
    results = json.loads((out / "results.json").read_text())
    assert len(results) == len(boxes)
    assert {r["image_id"] for r in results} == {img["id"] for img in coco["images"]}
    r = results[0]
    assert set(r) == {"image_id", "category_id", "keypoints", "score", "bbox"}
    assert len(r["keypoints"]) == 17 * 3 and r["category_id"] == 1
    stats = _evaluate(out / "results.json")
    assert len(stats) == 10 and all(np.isfinite(stats))
    preds = json.loads((out / "predictions.json").read_text())
    assert preds[0]["image"].endswith(".jpg") and preds[0]["interval_level"] == 0.9
    assert np.allclose(preds[0]["interval_axes"], 1.5 * np.asarray(preds[0]["keypoint_sigma"]))
    pngs = sorted((out / "vis").glob("*.png"))
    assert [p.stem for p in pngs] == sorted(Path(i["file_name"]).stem for i in coco["images"])
    for png in pngs:
        drawn = cv2.imread(str(png))
        source = cv2.imread(str(SAMPLE / f"{png.stem}.jpg"))
        assert drawn is not None and drawn.shape == source.shape and (drawn != source).any()


@needs_sample
@pytest.mark.parametrize("with_ann_file", [True, False])
def test_folder_with_detections(tmp_path, ckpt, with_ann_file):
    out = tmp_path / "out"
    extra = ["--ann-file", GT] if with_ann_file else []  # else ids from the numeric stems
    _tool(SAMPLE, "--checkpoint", ckpt, "--bboxes", DETS, "--bbox-thr", 0.3, "--out", out,
          "--no-vis", *extra)  # fmt: skip
    dets = [d for d in json.loads(DETS.read_text()) if d["score"] >= 0.3]
    results = json.loads((out / "results.json").read_text())
    assert len(results) == len(dets)
    assert sorted(r["image_id"] for r in results) == sorted(d["image_id"] for d in dets)
    assert not (out / "vis").exists()
    assert all(np.isfinite(_evaluate(out / "results.json")))


@needs_sample
def test_one_image_on_the_whole_frame_with_a_config(tmp_path):
    opts = {"model.backbone.model_name": "test_resnet"}
    ckpt = tmp_path / "plain.pth"
    torch.save({"state_dict": init_model(SYNTH_CONFIG, cfg_options=opts).state_dict()}, ckpt)
    out = tmp_path / "out"
    image = SAMPLE / "000000000785.jpg"
    _tool(image, "--config", SYNTH_CONFIG, "--checkpoint", ckpt, "--out", out, "--level", "none",
          "--cfg-options", "model.backbone.model_name=test_resnet")  # fmt: skip
    (r,) = json.loads((out / "results.json").read_text())
    assert r["image_id"] == 785 and r["bbox"] == [0.0, 0.0, 640.0, 425.0]
    (p,) = json.loads((out / "predictions.json").read_text())
    assert p["interval_axes"] is None
    assert (out / "vis" / "000000000785.png").stat().st_size > 1000


@needs_sample
def test_video(tmp_path, ckpt):
    frame = cv2.resize(cv2.imread(str(SAMPLE / "000000000785.jpg")), (160, 106))
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (160, 106))
    for i in range(5):
        writer.write(np.roll(frame, 4 * i, axis=1))
    writer.release()
    out = tmp_path / "out"
    summary = _tool(video, "--checkpoint", ckpt, "--out", out)
    results = json.loads((out / "results.json").read_text())
    assert [r["image_id"] for r in results] == [0, 1, 2, 3, 4] and summary.num_images == 5
    (drawn,) = summary.visualizations
    assert drawn == out / "clip.mp4" and drawn.stat().st_size > 1000
    cap = cv2.VideoCapture(str(drawn))
    frames = 0
    while cap.read()[0]:
        frames += 1
    cap.release()
    assert frames == 5


def test_errors_are_named(tmp_path, ckpt):
    with pytest.raises(SystemExit, match="input not found"):
        _tool(tmp_path / "missing.jpg", "--checkpoint", ckpt)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="no images"):
        _tool(tmp_path / "empty", "--checkpoint", ckpt)
    with pytest.raises(SystemExit, match="detection-box file not found"):
        _tool(tmp_path / "empty", "--checkpoint", ckpt, "--bboxes", tmp_path / "none.json")
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    with pytest.raises(SystemExit, match="bad.mp4"):
        _tool(tmp_path / "bad.mp4", "--checkpoint", ckpt, "--out", tmp_path / "o")
    with pytest.raises(SystemExit):  # argparse: the level is a probability
        _tool(tmp_path, "--checkpoint", ckpt, "--level", "2")


@needs_sample
def test_an_image_the_annotation_file_does_not_list(tmp_path, ckpt):
    shutil.copy(SAMPLE / "000000000785.jpg", tmp_path / "other.jpg")
    with pytest.raises(SystemExit, match="no image named 'other.jpg'"):
        _tool(tmp_path / "other.jpg", "--checkpoint", ckpt, "--ann-file", GT, "--out", tmp_path)
    model = init_model(checkpoint=ckpt)
    summary = infer_files(
        tmp_path / "other.jpg", model, out_dir=tmp_path / "o", bbox_file=DETS, progress=False
    )
    assert summary.num_instances == 0  # id "other": no detection of it
    assert json.loads(summary.results_file.read_text()) == []
