"""Top-down COCO keypoint dataset on pycocotools (no mmcv, no xtcocotools).

One data sample per person instance: from the ground-truth boxes (training, or evaluation with
GT boxes) or from a detection-box file (``[{bbox, category_id, image_id, score}]``).
``dataset_meta`` is read from the annotation file's category: keypoint names, skeleton, flip
pairs (``left_*`` <-> ``right_*``) and OKS sigmas (a ``sigmas`` entry of the category when
present, pycocotools' defaults for the standard 17 COCO keypoints otherwise).

Malformed input raises an exception that names the file, the record and the field; missing
image files raise unless ``missing_images="skip"`` (then they are skipped and counted in
``num_skipped_missing`` with one warning).
"""

from __future__ import annotations

import json
import logging
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.logging import print_log

from rle.datasets.base import KeypointBaseDataset
from rle.registry import DATASETS

__all__ = [
    "COCO_KEYPOINT_NAMES",
    "COCO_PERSON_CATEGORY",
    "COCO_SIGMAS",
    "COCO_SKELETON",
    "CocoKeypointDataset",
    "flip_indices_from_names",
]

COCO_KEYPOINT_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
# pycocotools' COCOeval defaults (kpt_oks_sigmas)
COCO_SIGMAS = (
    0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107,
    0.087, 0.087, 0.089, 0.089,
)  # fmt: skip
# COCO's 1-based keypoint links, in the order of the official annotation files
COCO_SKELETON = (
    (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7), (6, 8), (7, 9),
    (8, 10), (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7),
)  # fmt: skip
# the person category as person_keypoints_*.json files write it
COCO_PERSON_CATEGORY = {
    "supercategory": "person",
    "id": 1,
    "name": "person",
    "keypoints": list(COCO_KEYPOINT_NAMES),
    "skeleton": [list(link) for link in COCO_SKELETON],
}


def flip_indices_from_names(names: Sequence[str]) -> List[int]:
    """``flip_indices[k]`` = index of the mirror keypoint of ``names[k]`` (itself when
    unpaired), pairing ``left_x``/``right_x``, ``l_x``/``r_x`` and ``*_left``/``*_right``."""
    lookup = {n: i for i, n in enumerate(names)}
    swaps = (("left_", "right_"), ("l_", "r_"), ("_left", "_right"))
    out = []
    for i, name in enumerate(names):
        mirror = i
        for a, b in swaps:
            for x, y in ((a, b), (b, a)):
                if name.startswith(x) if x.endswith("_") else name.endswith(x):
                    other = (y + name[len(x) :]) if x.endswith("_") else (name[: -len(x)] + y)
                    if other in lookup:
                        mirror = lookup[other]
        out.append(mirror)
    return out


def _meta_from_category(category: dict, ann_file: str) -> dict:
    names = category.get("keypoints")
    if not isinstance(names, list) or not names:
        raise ValueError(
            f"{ann_file}: category {category.get('id')}: field 'keypoints' "
            "must be a non-empty list of keypoint names"
        )
    skeleton = category.get("skeleton", [])
    try:
        links = [(int(a) - 1, int(b) - 1) for a, b in skeleton]  # COCO links are 1-based
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"{ann_file}: category {category.get('id')}: field 'skeleton' must be "
            "a list of [a, b] 1-based keypoint pairs"
        ) from err
    if "sigmas" in category:
        sigmas = np.asarray(category["sigmas"], dtype=np.float64)
    elif tuple(names) == COCO_KEYPOINT_NAMES:
        sigmas = np.asarray(COCO_SIGMAS)
    else:
        raise ValueError(
            f"{ann_file}: category {category.get('id')}: no 'sigmas' field and the "
            "keypoints are not COCO's 17: OKS sigmas are unknown"
        )
    if sigmas.shape != (len(names),):
        raise ValueError(
            f"{ann_file}: category {category.get('id')}: field 'sigmas' must have "
            f"{len(names)} values, got {sigmas.shape}"
        )
    flip = flip_indices_from_names(names)
    return dict(
        dataset_name=category.get("name", "person"),
        keypoint_names=list(names),
        num_keypoints=len(names),
        skeleton_links=links,
        flip_indices=flip,
        flip_pairs=[(i, j) for i, j in enumerate(flip) if i < j],
        sigmas=sigmas,
        category_id=category.get("id", 1),
    )


@DATASETS.register_module()
class CocoKeypointDataset(KeypointBaseDataset):
    """Top-down COCO-format keypoint dataset (one sample per person instance).

    Args:
        ann_file: COCO keypoint json (relative to ``data_root``).
        data_root: root folder.
        data_prefix: ``dict(img="images/val2017/")``: image folder relative to ``data_root``.
        bbox_file: detection-box json; ``None`` uses the ground-truth boxes.
        bbox_score_thr: drop detections below this score.
        det_category_ids: detection categories kept (1 = person).
        filter_empty: skip crowd and keypoint-less instances (default: when training).
        missing_images: ``"raise"`` (default) or ``"skip"`` (skip with a counted warning).
        pipeline, test_mode, metainfo, kwargs: as mmengine's ``BaseDataset`` (``lazy_init``,
            ``indices``, ``serialize_data``, ``max_refetch``); pipeline entries are built from the
            ``rle`` transform registry.
    """

    def __init__(
        self,
        ann_file: str = "",
        data_root: str = "",
        data_prefix: Optional[dict] = None,
        bbox_file: Optional[str] = None,
        bbox_score_thr: float = 0.0,
        det_category_ids: Sequence[int] = (1,),
        filter_empty: Optional[bool] = None,
        missing_images: str = "raise",
        pipeline: Sequence = (),
        test_mode: bool = False,
        metainfo: Optional[dict] = None,
        **kwargs,
    ) -> None:
        if missing_images not in ("raise", "skip"):
            raise ValueError(f"missing_images must be 'raise' or 'skip', got {missing_images!r}")
        if bbox_file and data_root and not osp.isabs(bbox_file):
            bbox_file = osp.join(data_root, bbox_file)
        self.bbox_file = bbox_file
        self.bbox_score_thr = float(bbox_score_thr)
        self.det_category_ids = tuple(det_category_ids)
        self.filter_empty = (not test_mode) if filter_empty is None else bool(filter_empty)
        self.missing_images = missing_images
        self.num_skipped_missing = 0
        # KeypointBaseDataset's own order: ann_file, data_root, data_prefix, pipeline, metainfo
        super().__init__(
            ann_file, data_root, data_prefix, pipeline, metainfo, test_mode=test_mode, **kwargs
        )

    # -- loading ------------------------------------------------------------------------------
    def _load_coco(self):
        from pycocotools.coco import COCO

        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(f"annotation file not found: {self.ann_file}")
        try:
            with open(self.ann_file) as f:
                raw = json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f"{self.ann_file}: malformed or truncated json ({err})") from err
        for key in ("images", "annotations", "categories"):
            if key not in raw:
                raise ValueError(f"{self.ann_file}: missing top-level key '{key}'")
        coco = COCO()
        coco.dataset = raw
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):
            coco.createIndex()
        return coco

    def load_data_list(self) -> List[dict]:
        coco = self._load_coco()
        categories = [c for c in coco.dataset["categories"] if "keypoints" in c]
        if not categories:
            raise ValueError(f"{self.ann_file}: no category with a 'keypoints' field")
        meta = _meta_from_category(categories[0], self.ann_file)
        self._metainfo.update(meta)
        self.coco = coco
        if self.bbox_file:
            data = self._load_detections(coco, meta)
        else:
            data = self._load_gt(coco, meta)
        if self.num_skipped_missing:
            print_log(
                f"{self.ann_file}: skipped {self.num_skipped_missing} instances whose "
                "image file is missing (missing_images='skip')",
                logger="current",
                level=logging.WARNING,
            )
        return data

    def _image_path(self, img: dict) -> Optional[str]:
        name = img.get("file_name")
        if not isinstance(name, str):
            raise ValueError(f"{self.ann_file}: image {img.get('id')}: missing field 'file_name'")
        path = osp.join(self.data_prefix["img"], name)
        if not osp.isfile(path):
            if self.missing_images == "raise":
                raise FileNotFoundError(
                    f"{self.ann_file}: image {img.get('id')}: file not "
                    f"found: {path} (missing_images='skip' skips such)"
                )
            return None
        return path

    def _load_gt(self, coco, meta) -> List[dict]:
        k = meta["num_keypoints"]
        data = []
        paths: Dict[int, Optional[str]] = {}
        for ann in coco.dataset["annotations"]:
            rec = f"{self.ann_file}: annotation {ann.get('id')}"
            for key in ("image_id", "keypoints", "bbox"):
                if key not in ann:
                    raise ValueError(f"{rec}: missing field '{key}'")
            if self.filter_empty and (ann.get("iscrowd", 0) or ann.get("num_keypoints", 1) == 0):
                continue
            kpts = np.asarray(ann["keypoints"], dtype=np.float32)
            if kpts.shape != (3 * k,):
                raise ValueError(
                    f"{rec}: field 'keypoints' must have {3 * k} values "
                    f"(x, y, v for {k} keypoints), got {kpts.size}"
                )
            kpts = kpts.reshape(k, 3)
            if self.filter_empty and not (kpts[:, 2] > 0).any():
                continue
            bbox = self._xyxy(ann["bbox"], rec)
            img_id = ann["image_id"]
            if img_id not in coco.imgs:
                raise ValueError(f"{rec}: field 'image_id' {img_id} is not in 'images'")
            if img_id not in paths:
                paths[img_id] = self._image_path(coco.imgs[img_id])
            if paths[img_id] is None:
                self.num_skipped_missing += 1
                continue
            data.append(
                self._sample(
                    coco.imgs[img_id], paths[img_id], ann.get("id"), bbox, 1.0, kpts, ann, meta
                )
            )
        return data

    def _load_detections(self, coco, meta) -> List[dict]:
        k = meta["num_keypoints"]
        if not osp.isfile(self.bbox_file):
            raise FileNotFoundError(f"detection-box file not found: {self.bbox_file}")
        try:
            with open(self.bbox_file) as f:
                dets = json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f"{self.bbox_file}: malformed or truncated json ({err})") from err
        if not isinstance(dets, list):
            raise ValueError(f"{self.bbox_file}: expected a list of detections")
        data = []
        paths: Dict[int, Optional[str]] = {}
        zeros = np.zeros((k, 3), dtype=np.float32)
        for i, det in enumerate(dets):
            rec = f"{self.bbox_file}: detection {i}"
            for key in ("bbox", "image_id", "score"):
                if key not in det:
                    raise ValueError(f"{rec}: missing field '{key}'")
            if det.get("category_id", 1) not in self.det_category_ids:
                continue
            if det["score"] < self.bbox_score_thr:
                continue
            img_id = det["image_id"]
            if img_id not in coco.imgs:
                raise ValueError(f"{rec}: field 'image_id' {img_id} is not in {self.ann_file}")
            if img_id not in paths:
                paths[img_id] = self._image_path(coco.imgs[img_id])
            if paths[img_id] is None:
                self.num_skipped_missing += 1
                continue
            bbox = self._xyxy(det["bbox"], rec)
            data.append(
                self._sample(
                    coco.imgs[img_id],
                    paths[img_id],
                    len(data),
                    bbox,
                    float(det["score"]),
                    zeros,
                    {},
                    meta,
                )
            )
        return data

    @staticmethod
    def _xyxy(bbox, rec: str) -> np.ndarray:
        arr = np.asarray(bbox, dtype=np.float64).reshape(-1)
        if arr.shape != (4,) or not np.isfinite(arr).all() or arr[2] <= 0 or arr[3] <= 0:
            raise ValueError(f"{rec}: field 'bbox' must be [x, y, w, h] with w, h > 0, got {bbox}")
        return np.array([arr[0], arr[1], arr[0] + arr[2], arr[1] + arr[3]], dtype=np.float32)

    @staticmethod
    def _sample(img, path, ann_id, bbox, score, kpts, ann, meta) -> dict:
        return dict(
            img_id=img["id"],
            img_path=path,
            img_shape=(img.get("height"), img.get("width")),
            id=ann_id,
            bbox=bbox,
            bbox_score=np.float32(score),
            keypoints=kpts[:, :2].copy(),
            keypoints_visible=kpts[:, 2].copy(),
            num_keypoints=int((kpts[:, 2] > 0).sum()),
            area=np.float32(ann.get("area", (bbox[2] - bbox[0]) * (bbox[3] - bbox[1]))),
            iscrowd=int(ann.get("iscrowd", 0)),
            category_id=int(ann.get("category_id", meta["category_id"])),
            flip_indices=meta["flip_indices"],
        )
