"""Top-down COCO keypoint dataset on pycocotools (no mmcv, no xtcocotools).

One data sample per person instance: from the ground-truth boxes (training, or evaluation with
GT boxes) or from a detection-box file (``[{bbox, category_id, image_id, score}]``).
``dataset_meta`` is read from the annotation file's category: keypoint names, skeleton, flip
pairs (``left_*`` <-> ``right_*``) and OKS sigmas (a ``sigmas`` entry of the category when
present, pycocotools' defaults for the standard 17 COCO keypoints otherwise).

Malformed input raises an exception that names the file, the record and the field:
annotation and image ids must be present and unique, keypoints, boxes and detection scores must
be numbers (not strings), labelled keypoints (v > 0) finite. Unlabelled keypoints (v = 0) with
NaN or infinite coordinates are read as COCO's own ``(0, 0, 0)``. Missing image files and
truncated JPEG/PNG files raise unless ``missing_images="skip"`` (then they are skipped and
counted in ``num_skipped_missing`` / ``num_skipped_corrupt`` with one warning each). Instances
whose box lies entirely outside its image are skipped and counted (``num_skipped_outside``,
one warning). A dataset left with no sample raises ``ValueError`` naming the file and what
removed each instance (an empty set cannot be trained or evaluated: mmengine's sampler divides
by its length).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import numbers
import os.path as osp
from collections import Counter
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.logging import print_log

from rle.datasets.base import KeypointBaseDataset
from rle.datasets.transforms import image_file_problem
from rle.registry import DATASETS

__all__ = [
    "COCO_KEYPOINT_NAMES",
    "COCO_PERSON_CATEGORY",
    "COCO_SIGMAS",
    "COCO_SKELETON",
    "CocoKeypointDataset",
    "flip_indices_from_names",
    "load_coco",
    "numeric_field",
    "read_detections",
    "xywh_to_xyxy",
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


def _non_numbers(value, path: Tuple[int, ...] = ()) -> Iterator[Tuple[Tuple[int, ...], object]]:
    """The entries of a (nested) list that are not real numbers, with their positions."""
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _non_numbers(v, path + (i,))
    elif isinstance(value, bool) or not isinstance(value, numbers.Real):
        yield path, value


def numeric_field(
    value, rec: str, field: str, dtype=np.float64, finite: bool = False
) -> np.ndarray:
    """``value`` (a number or a nested list of numbers, as json gives them) as an array.

    Args:
        value: the field's value.
        rec: the file and the record, for the messages (``"a.json: annotation 7"``).
        field: the field's name.
        dtype: the array's dtype.
        finite: also refuse NaN and infinite values.

    Raises:
        ValueError: an entry is not a number (a string, ``None``, a bool, ...: numpy would
            silently parse ``"10"``), the nesting is ragged, or (``finite``) a value is not
            finite; the message names ``rec``, ``field`` and the first offending entry.
    """
    try:
        # no dtype: numpy would parse "10" into 10.0; an inferred dtype tells strings apart
        arr = np.asarray(value)
    except ValueError as err:  # ragged nesting
        raise ValueError(
            f"{rec}: field {field!r} is not a regular array of numbers ({err})"
        ) from err
    if arr.dtype.kind not in "iuf":
        bad = next(_non_numbers(value), None)
        got = f"dtype {arr.dtype}" if bad is None else f"{bad[1]!r} ({type(bad[1]).__name__})"
        where = f" at position {list(bad[0])}" if bad is not None and bad[0] else ""
        raise ValueError(f"{rec}: field {field!r} must contain only numbers, got {got}{where}")
    arr = arr.astype(dtype, copy=False)
    if finite and not np.isfinite(arr).all():
        pos = np.argwhere(~np.isfinite(arr))[0].tolist()
        raise ValueError(
            f"{rec}: field {field!r} has a NaN or infinite value"
            + (f" at position {pos}: {arr[tuple(pos)]}" if pos else f": {arr}")
        )
    return arr


def _is_id(value) -> bool:
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def _unique_ids(records, path: str, kind: str, refs: Sequence[str] = ()) -> None:
    """Raise unless every record of ``records`` (the file's ``kind`` list) is a dict with an
    ``id`` seen once, and its fields ``refs`` (ids of other records) are ints or strings when
    present: pycocotools indexes by id, so a duplicate silently replaces the first record
    (ground truth evaluated against itself then scores AP ~0), and a list as id crashes it."""
    if not isinstance(records, list):
        raise ValueError(f"{path}: top-level key '{kind}' must be a list of records")
    first: Dict[object, int] = {}
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise ValueError(f"{path}: {kind}[{i}] must be a json object, got {type(rec).__name__}")
        if "id" not in rec:
            hint = f" (image_id {rec['image_id']!r})" if "image_id" in rec else ""
            raise ValueError(f"{path}: {kind}[{i}]{hint}: missing field 'id'")
        for field in ("id", *refs):
            if field in rec and not _is_id(rec[field]):
                raise ValueError(
                    f"{path}: {kind}[{i}] (id {rec['id']!r}): field {field!r} must be an int "
                    f"or a string, got {rec[field]!r}"
                )
        key = rec["id"]
        if key in first:
            raise ValueError(
                f"{path}: duplicate {kind[:-1]} id {key!r} ({kind}[{first[key]}] and "
                f"{kind}[{i}]): ids must be unique"
            )
        first[key] = i


def xywh_to_xyxy(
    bbox, rec: str, in_float32: bool = False, allow_empty: bool = False
) -> Optional[np.ndarray]:
    """A COCO ``[x, y, w, h]`` field of record ``rec`` -> ``(4,)`` float32 xyxy (pixel edges).

    ``x + w`` in float64 (annotations) or, as MMPose reads detection files, in float32
    (``in_float32``; the two differ by up to one ulp). A box with ``w`` or ``h <= 0`` is an
    error, or ``None`` with ``allow_empty``.
    """
    arr = numeric_field(bbox, rec, "bbox").reshape(-1)
    if arr.shape != (4,) or not np.isfinite(arr).all():
        raise ValueError(f"{rec}: field 'bbox' must be 4 finite numbers [x, y, w, h], got {bbox}")
    if arr[2] <= 0 or arr[3] <= 0:
        if allow_empty:
            return None
        raise ValueError(f"{rec}: field 'bbox' must be [x, y, w, h] with w, h > 0, got {bbox}")
    if in_float32:
        arr = arr.astype(np.float32)
    return np.array([arr[0], arr[1], arr[0] + arr[2], arr[1] + arr[3]], dtype=np.float32)


def read_detections(
    path: str, allow_empty: bool = False
) -> List[Tuple[str, object, int, float, Optional[np.ndarray]]]:
    """The checked records of a COCO-format detection json ``[{image_id, bbox, score[,
    category_id]}]``: ``(rec, image_id, category_id, score, bbox)`` per detection, ``rec`` its
    name for messages, ``bbox`` :func:`xywh_to_xyxy` in float32 (``None`` for an empty box with
    ``allow_empty``).

    Raises:
        FileNotFoundError: no such file.
        ValueError: malformed json, not a list, or a detection without a field or with a
            malformed one (named by file, position and field).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f"detection-box file not found: {path}")
    try:
        with open(path) as f:
            dets = json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: malformed or truncated json ({err})") from err
    if not isinstance(dets, list):
        raise ValueError(f"{path}: expected a list of detections [{{image_id, bbox, score}}]")
    out = []
    for i, det in enumerate(dets):
        rec = f"{path}: detection {i}"
        if not isinstance(det, dict):
            raise ValueError(f"{rec}: must be a json object, got {type(det).__name__}")
        for key in ("bbox", "image_id", "score"):
            if key not in det:
                raise ValueError(f"{rec}: missing field '{key}'")
        category = det.get("category_id", 1)
        if not isinstance(category, int) or isinstance(category, bool):
            raise ValueError(f"{rec}: field 'category_id' must be an int, got {category!r}")
        score = numeric_field(det["score"], rec, "score")
        if score.ndim != 0 or not np.isfinite(score):
            raise ValueError(f"{rec}: field 'score' must be a finite number, got {det['score']!r}")
        bbox = xywh_to_xyxy(det["bbox"], rec, in_float32=True, allow_empty=allow_empty)
        out.append((rec, det["image_id"], category, float(score), bbox))
    return out


def load_coco(ann_file: str):
    """A pycocotools ``COCO`` of the json ``ann_file``, checked first.

    Raises:
        FileNotFoundError: no such file.
        ValueError: malformed or truncated json, a missing top-level key (``images``,
            ``annotations``, ``categories``), or an image or annotation that is not a json
            object, lacks ``id`` or repeats another's ``id`` (named by file, position and id).
    """
    from pycocotools.coco import COCO

    if not osp.isfile(ann_file):
        raise FileNotFoundError(f"annotation file not found: {ann_file}")
    try:
        with open(ann_file) as f:
            raw = json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f"{ann_file}: malformed or truncated json ({err})") from err
    if not isinstance(raw, dict):
        raise ValueError(f"{ann_file}: expected a json object with images, annotations, ...")
    for key in ("images", "annotations", "categories"):
        if key not in raw:
            raise ValueError(f"{ann_file}: missing top-level key '{key}'")
    _unique_ids(raw["images"], ann_file, "images")
    _unique_ids(raw["annotations"], ann_file, "annotations", ("image_id", "category_id"))
    coco = COCO()
    coco.dataset = raw
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


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
        filter_empty: skip crowd and keypoint-less instances (default: when training). The
            published protocol (MMPose, the official code) also skips them when evaluating on
            ground-truth boxes: ``filter_empty=True`` with ``test_mode=True``.
        clip_bbox: clip ground-truth boxes to ``[0, W - 1] x [0, H - 1]`` as MMPose and the
            official code do (the published protocol); detection boxes are used as given, as
            both do. Default ``False``: boxes as annotated.
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
        clip_bbox: bool = False,
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
        self.clip_bbox = bool(clip_bbox)
        self.num_skipped_missing = 0
        self.num_skipped_corrupt = 0
        self.num_skipped_outside = 0
        # KeypointBaseDataset's own order: ann_file, data_root, data_prefix, pipeline, metainfo
        super().__init__(
            ann_file, data_root, data_prefix, pipeline, metainfo, test_mode=test_mode, **kwargs
        )

    # -- loading ------------------------------------------------------------------------------
    def load_data_list(self) -> List[dict]:
        coco = load_coco(self.ann_file)
        categories = [c for c in coco.dataset["categories"] if "keypoints" in c]
        if not categories:
            raise ValueError(f"{self.ann_file}: no category with a 'keypoints' field")
        meta = _meta_from_category(categories[0], self.ann_file)
        self._metainfo.update(meta)
        self.coco = coco
        # why instances were left out, for the warnings and the empty-dataset error
        removed: Counter = Counter()
        self.num_skipped_missing = self.num_skipped_corrupt = self.num_skipped_outside = 0
        if self.bbox_file:
            data, total = self._load_detections(coco, meta, removed)
        else:
            data, total = self._load_gt(coco, meta, removed)
        self.num_skipped_missing = removed["missing"]
        self.num_skipped_corrupt = removed["corrupt"]
        self.num_skipped_outside = removed["outside"]
        self._warn_skipped(removed)
        if not data:
            raise ValueError(self._empty_message(total, removed))
        return data

    def _warn_skipped(self, removed: Counter) -> None:
        source = self.bbox_file or self.ann_file
        for key, what in (
            ("missing", "whose image file is missing (missing_images='skip')"),
            ("corrupt", "whose image file is truncated or corrupt (missing_images='skip')"),
            ("outside", "whose box lies entirely outside its image"),
        ):
            if removed[key]:
                print_log(
                    f"{source}: skipped {removed[key]} instances {what}",
                    logger="current",
                    level=logging.WARNING,
                )

    def _empty_message(self, total: int, removed: Counter) -> str:
        source = self.bbox_file or self.ann_file
        kind = "detections" if self.bbox_file else "annotations"
        purpose = "evaluate" if self.test_mode else "train on"
        reasons = {
            "crowd": "crowd or without labelled keypoints (filter_empty=True)",
            "category": f"of categories other than det_category_ids={self.det_category_ids}",
            "score": f"below bbox_score_thr={self.bbox_score_thr}",
            "outside": "with a box entirely outside the image",
            "missing": "whose image file is missing (missing_images='skip')",
            "corrupt": "whose image file is truncated or corrupt (missing_images='skip')",
        }
        parts = [f"{removed[k]} {text}" for k, text in reasons.items() if removed[k]]
        return f"{source}: no samples to {purpose}: the file has {total} {kind}" + (
            f"; removed: {'; '.join(parts)}" if parts else ""
        )

    def _image_path(self, img: dict) -> Tuple[Optional[str], Optional[str]]:
        """``(path, None)``, or ``(None, "missing" | "corrupt")`` when skipping such images."""
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
            return None, "missing"
        # a truncated file still decodes (into a partly grey image): refuse it here, as a
        # missing one, with a cheap look at its end (LoadImage checks the full bytes)
        problem = image_file_problem(path)
        if problem:
            if self.missing_images == "raise":
                raise ValueError(
                    f"{self.ann_file}: image {img.get('id')}: {path}: {problem} "
                    "(missing_images='skip' skips such)"
                )
            return None, "corrupt"
        return path, None

    def _resolve(self, coco, img_id, rec: str, paths: dict, removed: Counter) -> Optional[str]:
        """The image path of ``img_id`` (cached in ``paths``), ``None`` when it is skipped."""
        if not _is_id(img_id):
            raise ValueError(f"{rec}: field 'image_id' must be an int or a string, got {img_id!r}")
        if img_id not in coco.imgs:
            raise ValueError(f"{rec}: field 'image_id' {img_id} is not in {self.ann_file}")
        if img_id not in paths:
            paths[img_id] = self._image_path(coco.imgs[img_id])
        path, reason = paths[img_id]
        if reason:
            removed[reason] += 1
        return path

    @staticmethod
    def _keypoints(ann: dict, rec: str, meta: dict) -> np.ndarray:
        """``(K, 3)`` float32 ``x, y, v`` of an annotation, checked."""
        k = meta["num_keypoints"]
        kpts = numeric_field(ann["keypoints"], rec, "keypoints", np.float32)
        if kpts.shape != (3 * k,):
            raise ValueError(
                f"{rec}: field 'keypoints' must have {3 * k} values "
                f"(x, y, v for {k} keypoints), got {kpts.size}"
            )
        kpts = kpts.reshape(k, 3)
        finite = np.isfinite(kpts)
        if not finite.all():
            # v must be a number; x, y of a labelled keypoint (v > 0) must be finite
            bad = ~finite[:, 2] | ((kpts[:, 2] > 0) & ~finite[:, :2].all(1))
            if bad.any():
                j = int(np.flatnonzero(bad)[0])
                raise ValueError(
                    f"{rec}: field 'keypoints': keypoint {j} ({meta['keypoint_names'][j]}) has "
                    f"(x, y, v) = {kpts[j].tolist()}: a labelled keypoint (v > 0) needs finite "
                    "x and y, and v must be finite"
                )
            # unlabelled (v = 0) with NaN/inf coordinates: COCO's own (0, 0, 0)
            kpts[:, :2] = np.where(finite[:, :2], kpts[:, :2], 0.0)
        return kpts

    def _load_gt(self, coco, meta, removed: Counter) -> Tuple[List[dict], int]:
        data = []
        paths: Dict[object, Tuple[Optional[str], Optional[str]]] = {}
        anns = coco.dataset["annotations"]
        for ann in anns:
            rec = f"{self.ann_file}: annotation {ann.get('id')}"
            for key in ("image_id", "keypoints", "bbox"):
                if key not in ann:
                    raise ValueError(f"{rec}: missing field '{key}'")
            if self.filter_empty and (ann.get("iscrowd", 0) or ann.get("num_keypoints", 1) == 0):
                removed["crowd"] += 1
                continue
            kpts = self._keypoints(ann, rec, meta)
            if self.filter_empty and not (kpts[:, 2] > 0).any():
                removed["crowd"] += 1
                continue
            bbox = xywh_to_xyxy(ann["bbox"], rec)
            placed = self._placed(coco, ann["image_id"], bbox, rec, paths, removed)
            if placed is not None and self.clip_bbox:
                bbox = _clip(ann["bbox"], placed[0])
                if not (bbox[2:] > bbox[:2]).all():  # MMPose drops boxes clipped to nothing
                    removed["outside"] += 1
                    placed = None
            if placed is not None:
                data.append(self._sample(*placed, ann.get("id"), bbox, 1.0, kpts, ann, meta))
        return data, len(anns)

    def _placed(self, coco, img_id, bbox, rec: str, paths: dict, removed: Counter):
        """``(image record, image path)`` of an instance, or ``None`` when it is skipped (a
        missing image with ``missing_images="skip"``, a box outside the image; counted in
        ``removed``)."""
        path = self._resolve(coco, img_id, rec, paths, removed)
        if path is None:
            return None
        if _outside(bbox, coco.imgs[img_id]):
            removed["outside"] += 1
            return None
        return coco.imgs[img_id], path

    def _load_detections(self, coco, meta, removed: Counter) -> Tuple[List[dict], int]:
        k = meta["num_keypoints"]
        dets = read_detections(self.bbox_file)
        data = []
        paths: Dict[object, Tuple[Optional[str], Optional[str]]] = {}
        zeros = np.zeros((k, 3), dtype=np.float32)
        for rec, image_id, category, score, bbox in dets:
            if category not in self.det_category_ids:
                removed["category"] += 1
                continue
            if score < self.bbox_score_thr:
                removed["score"] += 1
                continue
            placed = self._placed(coco, image_id, bbox, rec, paths, removed)
            if placed is not None:
                data.append(self._sample(*placed, len(data), bbox, score, zeros, {}, meta))
        return data, len(dets)

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


def _clip(xywh, img: dict) -> np.ndarray:
    """An annotation's ``[x, y, w, h]`` as the xyxy box clipped to ``[0, W - 1] x [0, H - 1]``,
    computed as MMPose computes it (float64, then float32); unclipped without an image size."""
    x, y, w, h = (float(v) for v in xywh)
    width, height = img.get("width"), img.get("height")
    if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in (width, height)):
        return np.array([x, y, x + w, y + h], dtype=np.float32)
    box = np.clip([x, y, x + w, y + h], 0, [width - 1, height - 1, width - 1, height - 1])
    return box.astype(np.float32)


def _outside(bbox: np.ndarray, img: dict) -> bool:
    """Whether the xyxy box (pixel edges) misses the image ``[0, width] x [0, height]``; an
    image without a numeric size is not checked. Such a box crops only padding: every joint
    gets weight 0 and the instance trains with loss 0."""
    width, height = img.get("width"), img.get("height")
    if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in (width, height)):
        return False
    x1, y1, x2, y2 = (float(v) for v in bbox)
    return not (x1 < width and y1 < height and x2 > 0 and y2 > 0)
