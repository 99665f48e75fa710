"""Running a model over files: an image, a folder of images or a video (``tools/infer.py``).

:func:`infer_files` writes into ``out_dir``:

* ``results.json``: the COCO keypoint results format, one record per instance
  ``{image_id, category_id, keypoints: [x, y, score] * K, score, bbox: [x, y, w, h]}``, which
  ``pycocotools.COCO.loadRes`` reads; ``score`` is the box score times the mean of the keypoint
  scores above 0.2 (MMPose's rescoring, :func:`rle.evaluation.metrics.instance_scores`). The
  instances are as predicted, without OKS-NMS.
* ``predictions.json``: every field of each :class:`rle.apis.PoseResult` (sigma, interval
  semi-axes, depth) with its ``image`` (file name or frame index) and ``image_id``.
* ``vis/NAME.png`` per image (file stem, or the full name where stems repeat), or
  ``NAME.mp4`` for a video: the drawn results (:func:`rle.visualization.draw_results`).

Boxes and image ids:

* ``ann_file`` (a COCO keypoint json): images are matched to its ``images`` by file name
  (the base name of ``file_name``; a file it does not list is an error) and take their ids;
  without ``bbox_file`` the boxes are its annotations of that image (crowd and empty boxes
  left out), scored 1.
* ``bbox_file`` (COCO detections ``[{image_id, bbox: [x, y, w, h], score, category_id}]``): the
  detections of the image's id with ``category_id`` 1 (person; absent = 1) and a score at or
  above ``bbox_thr``. Without ``ann_file`` an image's id is its file stem as an int when it is
  all digits (COCO's ``000000000785.jpg`` is 785), else the stem itself.
* neither: one box over the whole image.
* a video's frames are images whose id is the frame index (0-based) for both files.
"""

from __future__ import annotations

import json
import os
import os.path as osp
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple, Union

import numpy as np

__all__ = ["IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS", "InferSummary", "infer_files"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".m4v")
ImageId = Union[int, str]


@dataclass
class InferSummary:
    """What :func:`infer_files` wrote.

    Attributes:
        results_file: ``results.json`` (COCO keypoint results).
        predictions_file: ``predictions.json`` (every result field).
        visualizations: the annotated PNGs, or the one MP4 of a video.
        num_images: images (or video frames) processed.
        num_instances: instances predicted.
    """

    results_file: Path
    predictions_file: Path
    visualizations: List[Path] = field(default_factory=list)
    num_images: int = 0
    num_instances: int = 0


class _Boxes:
    """The image ids and boxes of the module docstring."""

    def __init__(self, bbox_file, ann_file, bbox_thr: float) -> None:
        self.coco = None
        self.by_name: Dict[str, dict] = {}
        self.dets: Optional[Dict[ImageId, List[Tuple[np.ndarray, float]]]] = None
        self.ann_file = None if ann_file is None else os.fspath(ann_file)
        if self.ann_file is not None:
            from rle.datasets.coco import load_coco

            self.coco = load_coco(self.ann_file)
            self.by_name = {osp.basename(str(img.get("file_name"))): img
                            for img in self.coco.dataset["images"]}  # fmt: skip
        if bbox_file is not None:
            self.dets = self._read_detections(os.fspath(bbox_file), float(bbox_thr))

    @staticmethod
    def _read_detections(path: str, thr: float) -> Dict[ImageId, List[Tuple[np.ndarray, float]]]:
        from rle.datasets.coco import read_detections

        out: Dict[ImageId, List[Tuple[np.ndarray, float]]] = {}
        # a detector's empty boxes are skipped, not an error: there is nothing to crop
        for _, image_id, category, score, box in read_detections(path, allow_empty=True):
            if category == 1 and score >= thr and box is not None:
                out.setdefault(image_id, []).append((box, score))
        return out

    def image_id(self, path: Path) -> ImageId:
        if self.coco is not None:
            img = self.by_name.get(path.name)
            if img is None:
                raise ValueError(f"{path}: no image named {path.name!r} in {self.ann_file}")
            return img["id"]
        return int(path.stem) if path.stem.isdigit() else path.stem

    def boxes(self, image_id: ImageId) -> Tuple[Optional[np.ndarray], Optional[np.ndarray]]:
        """``(N, 4)`` xyxy boxes and ``(N,)`` scores, or ``(None, None)``: the whole image."""
        if self.dets is not None:
            found = self.dets.get(image_id, [])
        elif self.coco is not None:
            from rle.datasets.coco import xywh_to_xyxy

            found = []
            for ann in self.coco.imgToAnns.get(image_id, []):
                rec = f"{self.ann_file}: annotation {ann.get('id')}"
                box = xywh_to_xyxy(ann.get("bbox"), rec, allow_empty=True)
                if box is not None and not ann.get("iscrowd", 0):
                    found.append((box, 1.0))
        else:
            return None, None
        boxes = np.array([b for b, _ in found], dtype=np.float32).reshape(-1, 4)
        return boxes, np.array([s for _, s in found], dtype=np.float32)


def _image_files(path: Path) -> List[Path]:
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise ValueError(f"{path}: no images ({', '.join(IMAGE_EXTENSIONS)}) in this folder")
    return files


def _frames(path: Path, progress: bool) -> Iterator[Tuple[int, np.ndarray, float]]:
    """``(index, frame, fps)`` of a video file."""
    import cv2
    from tqdm import tqdm

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ValueError(f"{path}: cannot open this video (OpenCV VideoCapture)")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    try:
        with tqdm(total=total, desc=path.name, unit="frame", disable=not progress) as bar:
            index = 0
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                yield index, frame, fps
                index += 1
                bar.update()
    finally:
        cap.release()
    if index == 0:
        raise ValueError(f"{path}: the video has no readable frame")


def _coco_records(results, image_id, category_id: int) -> List[dict]:
    from rle.evaluation.metrics import instance_scores

    if not results:
        return []
    scores = instance_scores(
        [r.bbox_score for r in results], np.stack([r.keypoint_scores for r in results])
    )
    out = []
    for r, score in zip(results, scores):
        x1, y1, x2, y2 = (float(v) for v in r.bbox)
        out.append(dict(
            image_id=image_id, category_id=category_id, score=float(score),
            keypoints=np.c_[r.keypoints, r.keypoint_scores].astype(np.float64).ravel().tolist(),
            bbox=[x1, y1, x2 - x1, y2 - y1],
        ))  # fmt: skip
    return out


def infer_files(
    input,
    model=None,
    *,
    config=None,
    checkpoint=None,
    device: str = "cpu",
    unsafe_load: bool = False,
    cfg_options: Optional[dict] = None,
    bbox_file=None,
    ann_file=None,
    out_dir="work_dirs/infer",
    level: Optional[float] = 0.9,
    score_thr: float = 0.3,
    bbox_thr: float = 0.0,
    batch_size: int = 32,
    draw: bool = True,
    progress: bool = True,
) -> InferSummary:
    """Predict the poses in an image, a folder of images or a video, and write the results.

    Args:
        input: an image file, a folder of images (:data:`IMAGE_EXTENSIONS`, not recursive, in
            name order) or a video file (:data:`VIDEO_EXTENSIONS`, read with OpenCV).
        model: a pose model (:mod:`rle.apis.inference`); ``None``: :func:`rle.apis.init_model`
            of ``config`` / ``checkpoint`` on ``device`` (``unsafe_load``, ``cfg_options``).
        bbox_file: COCO detections, ann_file: a COCO keypoint json (module docstring).
        out_dir: the output folder (module docstring), created if missing.
        level: the interval level of the drawn ellipses and the results' ``interval_axes``;
            ``None``: none.
        score_thr: keypoints scored below it are not drawn (all are written).
        bbox_thr: detections scored below it are dropped.
        batch_size: crops per forward pass.
        draw: write the annotated images / video.
        progress: show a progress bar (tqdm).

    Returns:
        the :class:`InferSummary`.

    Raises:
        FileNotFoundError: a missing input, box or annotation file.
        ValueError: a folder without images, an unreadable image or video, an image the
            ``ann_file`` does not list, malformed box files.
    """
    import cv2
    from tqdm import tqdm

    from rle.apis.inference import inference_topdown, init_model
    from rle.checkpoint import atomic_write_bytes
    from rle.visualization import draw_results

    src = Path(os.fspath(input))
    if not src.exists():
        raise FileNotFoundError(f"input not found: {src}")
    source = _Boxes(bbox_file, ann_file, bbox_thr)
    if model is None:
        model = init_model(config, checkpoint, device, unsafe_load=unsafe_load,
                           cfg_options=cfg_options)  # fmt: skip
    meta = model.dataset_meta
    category_id = int(meta.get("category_id", 1))
    out = Path(os.fspath(out_dir))
    out.mkdir(parents=True, exist_ok=True)
    summary = InferSummary(out / "results.json", out / "predictions.json")
    coco: List[dict] = []
    records: List[dict] = []

    def run(img, image_id, name):
        boxes, scores = source.boxes(image_id)
        results = inference_topdown(model, img, boxes, bbox_scores=scores,
                                    batch_size=batch_size, interval_level=level)  # fmt: skip
        coco.extend(_coco_records(results, image_id, category_id))
        records.extend(dict(image=name, image_id=image_id, **r.to_dict()) for r in results)
        summary.num_images += 1
        summary.num_instances += len(results)
        return draw_results(img, results, meta, score_thr=score_thr) if draw else None

    if src.is_file() and src.suffix.lower() in VIDEO_EXTENSIONS:
        writer = None
        video = out / f"{src.stem}.mp4"
        try:
            for index, frame, fps in _frames(src, progress):
                drawn = run(frame, index, index)
                if drawn is None:
                    continue
                if writer is None:
                    h, w = drawn.shape[:2]
                    writer = cv2.VideoWriter(
                        str(video), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h)
                    )
                    if not writer.isOpened():
                        raise RuntimeError(f"{video}: OpenCV cannot write an mp4v video here")
                writer.write(drawn)
        finally:
            if writer is not None:
                writer.release()
        summary.visualizations = [video] if writer is not None else []
    else:
        from rle.apis.inference import read_image

        files = _image_files(src) if src.is_dir() else [src]
        stems = [p.stem for p in files]
        unique = len(set(stems)) == len(stems)
        for path in tqdm(files, desc=src.name, unit="image", disable=not progress):
            image_id = source.image_id(path)
            drawn = run(read_image(path), image_id, path.name)
            if drawn is not None:
                png = out / "vis" / f"{path.stem if unique else path.name}.png"
                png.parent.mkdir(exist_ok=True)
                if not cv2.imwrite(str(png), drawn):
                    raise RuntimeError(f"{png}: OpenCV could not write the image")
                summary.visualizations.append(png)
    atomic_write_bytes(summary.results_file, json.dumps(coco).encode())
    atomic_write_bytes(summary.predictions_file, json.dumps(records).encode())
    return summary
