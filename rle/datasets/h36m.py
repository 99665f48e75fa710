"""Image-based Human3.6M (3-D) dataset reading both public annotation layouts.

* MMPose layout: an ``.npz`` with ``imgname`` (N,), ``center`` (N, 2), ``scale`` (N,)
  (box side = 200 * scale), ``part`` (N, 17, 3) pixels + visibility, ``S`` (N, 17, 4)
  camera-frame metres + visibility, and ``cameras.pkl`` keyed ``(subject, camera_id)``.
* Official RLE layout: a COCO-like json with parallel ``images`` / ``annotations``; each
  annotation has ``image_id``, ``bbox`` [x, y, w, h], ``keypoints_world`` (17 x 3, mm) and
  ``cam_param`` {R, t, f, c} with ``X_cam = R (X_world - t)``; 2-D keypoints are the pinhole
  projection of ``X_cam`` (as the official code).

Camera conventions: :mod:`rle.datasets.cameras`. Samples carry ``keypoints`` (17, 2) image
pixels, ``keypoints_cam`` (17, 3) camera frame in **mm**, ``subject``, ``action``,
``camera_id``; :class:`~rle.datasets.transforms.EncodeKeypoints` (``num_dims=3``) makes the
targets (crop-normalised u, v and root-relative depth / 2000 mm).

Protocol 2 splits by subject: train S1, S5, S6, S7, S8; test S9, S11.
"""

from __future__ import annotations

import json
import os.path as osp
import re
from typing import List, Optional, Sequence, Tuple

import numpy as np

from rle.datasets.base import KeypointBaseDataset
from rle.datasets.cameras import project, world_to_camera_rle
from rle.datasets.coco import flip_indices_from_names, numeric_field
from rle.datasets.transforms import image_file_problem
from rle.registry import DATASETS
from rle.serialization import UnsafeFileError, load_pickle

__all__ = [
    "H36M_ACTIONS",
    "H36M_JOINT_NAMES",
    "H36M_SKELETON",
    "H36M_SUBJECTS",
    "H36MDataset",
    "SPLITS",
    "parse_imgname",
]

H36M_JOINT_NAMES = (
    "pelvis", "r_hip", "r_knee", "r_foot", "l_hip", "l_knee", "l_foot", "spine", "thorax",
    "neck_base", "head", "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist",
)  # fmt: skip
H36M_SKELETON = (
    (0, 1), (1, 2), (2, 3), (0, 4), (4, 5), (5, 6), (0, 7), (7, 8), (8, 9), (9, 10), (8, 11),
    (11, 12), (12, 13), (8, 14), (14, 15), (15, 16),
)  # fmt: skip
SPLITS = {"train": ("S1", "S5", "S6", "S7", "S8"), "test": ("S9", "S11")}
H36M_SUBJECTS = SPLITS["train"] + SPLITS["test"]
# the 15 actions in the official order (the RLE json's action_idx 2..16)
H36M_ACTIONS = (
    "Directions", "Discussion", "Eating", "Greeting", "Phoning", "Posing", "Purchases", "Sitting",
    "SittingDown", "Smoking", "Photo", "Waiting", "Walking", "WalkDog", "WalkTogether",
)  # fmt: skip

# the official json numbers the four cameras 1..4; cameras.pkl and image names use their ids
CAMERA_IDS = ("54138969", "55011271", "58860488", "60457274")


def _camera_id(value) -> str:
    text = str(value)
    return CAMERA_IDS[int(text) - 1] if text.isdigit() and 1 <= int(text) <= 4 else text


_MMPOSE_NAME = re.compile(r"(S\d+)/(S\d+)_([^.]+)\.(\d+)/")
_OFFICIAL_NAME = re.compile(r"s_(\d+)_act_(\d+)_subact_(\d+)_ca_(\d+)")


def parse_imgname(name: str) -> dict:
    """``S1/S1_Directions_1.54138969/S1_Directions_1.54138969_000001.jpg`` -> subject ``S1``,
    action ``Directions``, subaction ``1``, camera_id ``54138969``; also the official
    ``s_01_act_02_subact_01_ca_01`` form (camera index, not id)."""
    m = _MMPOSE_NAME.search(name)
    if m:
        subject, _, act, cam = m.groups()
        action, _, sub = act.partition("_")
        return dict(subject=subject, action=action, subaction=sub, camera_id=cam)
    m = _OFFICIAL_NAME.search(name)
    if m:
        s, a, sa, ca = (int(v) for v in m.groups())
        return dict(
            subject=f"S{s}", action=f"act_{a:02d}", subaction=str(sa), camera_id=_camera_id(ca)
        )
    raise ValueError(f"cannot parse subject/action/camera from image name {name!r}")


@DATASETS.register_module()
class H36MDataset(KeypointBaseDataset):
    """Human3.6M frames for image-based 3-D pose (MMPose ``.npz`` or official RLE json).

    Args:
        ann_file: ``.npz`` (MMPose layout) or ``.json`` (official RLE layout).
        camera_param_file: ``cameras.pkl`` (required for the ``.npz`` layout).
        data_root, data_prefix: image folder is ``data_root/data_prefix['img']``.
        split: ``"train"`` or ``"test"`` (protocol 2 subjects) unless ``subjects`` is given.
        subjects: explicit subjects to keep.
        add_thorax: append an 18th joint, the mean of the shoulders (official RLE).
        check_images: verify at load time that every image file exists and is not a
            truncated JPEG/PNG.
        pipeline, test_mode, kwargs: as mmengine's ``BaseDataset``.
    """

    def __init__(
        self,
        ann_file: str = "",
        camera_param_file: Optional[str] = None,
        data_root: str = "",
        data_prefix: Optional[dict] = None,
        split: str = "train",
        subjects: Optional[Sequence[str]] = None,
        add_thorax: bool = False,
        check_images: bool = False,
        pipeline: Sequence = (),
        test_mode: bool = False,
        **kwargs,
    ) -> None:
        if subjects is None:
            if split not in SPLITS:
                raise ValueError(f"split must be one of {tuple(SPLITS)}, got {split!r}")
            subjects = SPLITS[split]
        self.subjects = tuple(subjects)
        if camera_param_file and data_root and not osp.isabs(camera_param_file):
            camera_param_file = osp.join(data_root, camera_param_file)
        self.camera_param_file = camera_param_file
        self.add_thorax = add_thorax
        self.check_images = check_images
        names = list(H36M_JOINT_NAMES) + (["thorax_mid_shoulders"] if add_thorax else [])
        flip = flip_indices_from_names(names)
        metainfo = dict(
            keypoint_names=names,
            num_keypoints=len(names),
            skeleton_links=list(H36M_SKELETON),
            flip_indices=flip,
            flip_pairs=[(i, j) for i, j in enumerate(flip) if i < j],
            root_index=0,
        )
        # KeypointBaseDataset's own order: ann_file, data_root, data_prefix, pipeline, metainfo
        super().__init__(
            ann_file, data_root, data_prefix, pipeline, metainfo, test_mode=test_mode, **kwargs
        )
        self._metainfo["dataset_name"] = "h36m"

    def load_data_list(self) -> List[dict]:
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(f"annotation file not found: {self.ann_file}")
        if self.ann_file.endswith(".npz"):
            data, seen = self._load_npz()
        elif self.ann_file.endswith(".json"):
            data, seen = self._load_rle_json()
        else:
            raise ValueError(f"{self.ann_file}: expected an MMPose .npz or an official RLE .json")
        if not data:
            # an empty set cannot be trained or evaluated (mmengine's sampler divides by its size)
            raise ValueError(
                f"{self.ann_file}: no samples for subjects {list(self.subjects)}: the file's "
                f"records are of subjects {sorted(seen)}"
            )
        if self.add_thorax:
            for d in data:
                for key in ("keypoints", "keypoints_cam"):
                    d[key] = np.concatenate([d[key], d[key][[11, 14]].mean(0, keepdims=True)])
                d["keypoints_visible"] = np.append(
                    d["keypoints_visible"], d["keypoints_visible"][[11, 14]].min()
                )
        for d in data:
            d["flip_indices"] = self._metainfo["flip_indices"]
        return data

    # -- MMPose layout -------------------------------------------------------------------------
    def _load_cameras(self) -> dict:
        if not self.camera_param_file:
            raise ValueError(
                f"{self.ann_file}: the .npz layout needs camera_param_file (cameras.pkl)"
            )
        if not osp.isfile(self.camera_param_file):
            raise FileNotFoundError(f"camera file not found: {self.camera_param_file}")
        try:
            # the restricted unpickler: a crafted cameras.pkl would run code with pickle.load
            cams = load_pickle(self.camera_param_file)
        except UnsafeFileError:
            raise  # names the file and the refused global
        except Exception as err:  # noqa: BLE001 - any unpickling failure is a bad file
            raise ValueError(
                f"{self.camera_param_file}: cannot read camera parameters ({err})"
            ) from err
        if not isinstance(cams, dict):
            raise ValueError(
                f"{self.camera_param_file}: expected a dict keyed (subject, camera_id)"
            )
        return cams

    def _load_npz(self) -> Tuple[List[dict], set]:
        try:
            npz = np.load(self.ann_file, allow_pickle=False)
            arrays = {k: npz[k] for k in npz.files}
        except Exception as err:  # noqa: BLE001 - zip/npy errors: malformed or truncated file
            raise ValueError(f"{self.ann_file}: malformed or truncated .npz ({err})") from err
        for key in ("imgname", "center", "scale", "part", "S"):
            if key not in arrays:
                raise ValueError(f"{self.ann_file}: missing key '{key}'")
        n = len(arrays["imgname"])
        shapes = dict(center=(n, 2), scale=(n,), part=(n, 17, 3), S=(n, 17, 4))
        for key, shape in shapes.items():
            if arrays[key].shape != shape:
                raise ValueError(
                    f"{self.ann_file}: key '{key}' must have shape {shape}, got {arrays[key].shape}"
                )
        bad = self._nonfinite_records(arrays)
        cams = self._load_cameras()
        intrinsics = {}
        data = []
        seen = set()  # the subjects in the file, for the empty-dataset message
        for i in range(n):
            name = str(arrays["imgname"][i])
            try:
                info = parse_imgname(name)
            except ValueError as err:
                raise ValueError(f"{self.ann_file}: record {i}: field 'imgname': {err}") from err
            seen.add(info["subject"])
            if info["subject"] not in self.subjects:
                continue
            if i in bad:
                raise ValueError(f"{self.ann_file}: record {i} ({name}): {bad[i]}")
            key = (info["subject"], info["camera_id"])
            if key not in cams:
                raise ValueError(
                    f"{self.ann_file}: record {i} ({name}): field 'imgname' names "
                    f"camera {key} which is not in {self.camera_param_file}"
                )
            if key not in intrinsics:
                intrinsics[key] = self._intrinsics(cams[key], key, i)
            side = 200.0 * float(arrays["scale"][i])
            cx, cy = (float(v) for v in arrays["center"][i])
            data.append(
                self._sample(
                    i,
                    name,
                    cx,
                    cy,
                    side,
                    side,
                    arrays["part"][i, :, :2],
                    np.minimum(arrays["part"][i, :, 2], arrays["S"][i, :, 3]),
                    arrays["S"][i, :, :3] * 1000.0,
                    dict(intrinsics[key]),
                    info,
                )
            )
        return data, seen

    def _nonfinite_records(self, arrays: dict) -> dict:
        """``{record: what is wrong}`` for the npz records whose numbers are unusable: ``S`` or
        ``part`` with NaN/inf (a NaN joint would reach the loss), ``center`` not finite or
        ``scale`` not positive (no box)."""
        for key in ("center", "scale", "part", "S"):
            if arrays[key].dtype.kind not in "iuf":
                raise ValueError(
                    f"{self.ann_file}: key '{key}' must be numeric, got dtype {arrays[key].dtype}"
                )
        n = len(arrays["imgname"])
        bad = {}
        for key in ("S", "part", "center", "scale"):
            ok = np.isfinite(arrays[key].reshape(n, -1)).all(1)
            if key == "scale":
                ok &= arrays["scale"] > 0
            for i in np.flatnonzero(~ok).tolist():
                if key in ("S", "part"):
                    joints = np.flatnonzero(~np.isfinite(arrays[key][i]).all(1)).tolist()
                    what = f"has NaN or infinite values at joints {joints}"
                elif key == "center":
                    what = f"is not finite: {arrays[key][i].tolist()}"
                else:
                    what = f"must be finite and > 0, got {arrays[key][i]}"
                bad.setdefault(i, f"key '{key}' {what}")
        return bad

    def _intrinsics(self, cam, key, record: int) -> dict:
        """The checked ``f``, ``c`` (and optional distortion ``k``, ``p``) of one
        ``cameras.pkl`` entry; the error names the camera, the missing or bad key and the
        first record that uses it. ``R`` and ``T`` are not read (``S`` is camera-frame)."""
        where = (
            f"{self.camera_param_file}: camera {key} (used by record {record} of {self.ann_file})"
        )
        if not isinstance(cam, dict):
            raise ValueError(f"{where}: expected a dict with 'f' and 'c', got {type(cam).__name__}")
        out = {}
        for name, size in (("f", 2), ("c", 2), ("k", None), ("p", None)):
            if name not in cam:
                if size:
                    raise ValueError(f"{where}: missing key '{name}' (focal length f, centre c)")
                out[name] = np.zeros(3 if name == "k" else 2)
                continue
            arr = numeric_field(cam[name], where, name, finite=True).reshape(-1)
            if size and arr.size != size:
                raise ValueError(f"{where}: key '{name}' must have {size} values, got {arr.size}")
            out[name] = np.asarray(cam[name]).reshape(-1 if size is None else size)
        return out

    # -- official RLE layout -------------------------------------------------------------------
    def _load_rle_json(self) -> Tuple[List[dict], set]:
        try:
            with open(self.ann_file) as f:
                raw = json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f"{self.ann_file}: malformed or truncated json ({err})") from err
        for key in ("images", "annotations"):
            if key not in raw:
                raise ValueError(f"{self.ann_file}: missing top-level key '{key}'")
        images = {img.get("id"): img for img in raw["images"]}
        data = []
        seen = set()  # the subjects in the file, for the empty-dataset message
        for i, ann in enumerate(raw["annotations"]):
            rec = f"{self.ann_file}: annotation {ann.get('id', i)}"
            for key in ("image_id", "bbox", "keypoints_world", "cam_param"):
                if key not in ann:
                    raise ValueError(f"{rec}: missing field '{key}'")
            img = images.get(ann["image_id"])
            if img is None:
                raise ValueError(f"{rec}: field 'image_id' {ann['image_id']} is not in 'images'")
            info = self._image_info(img, rec)
            seen.add(info["subject"])
            if info["subject"] not in self.subjects:
                continue
            world = numeric_field(ann["keypoints_world"], rec, "keypoints_world", finite=True)
            if world.shape != (17, 3):
                raise ValueError(
                    f"{rec}: field 'keypoints_world' must be 17 x 3, got {world.shape}"
                )
            cam = ann["cam_param"]
            if not isinstance(cam, dict):
                raise ValueError(f"{rec}: field 'cam_param' must be a dict with R, t, f, c")
            for key, size in (("R", 9), ("t", 3), ("f", 2), ("c", 2)):
                if key not in cam:
                    raise ValueError(f"{rec}: field 'cam_param' lacks '{key}'")
                field = f"cam_param.{key}"
                if numeric_field(cam[key], rec, field, finite=True).size != size:
                    raise ValueError(f"{rec}: field '{field}' must have {size} values")
            x_cam = world_to_camera_rle(world, cam["R"], cam["t"])
            uv = project(x_cam, cam["f"], cam["c"])
            bbox = numeric_field(ann["bbox"], rec, "bbox", finite=True).reshape(-1)
            if bbox.shape != (4,):
                raise ValueError(f"{rec}: field 'bbox' must be [x, y, w, h], got {ann['bbox']}")
            x, y, w, h = (float(v) for v in bbox)
            if not (w > 0 and h > 0):
                raise ValueError(f"{rec}: field 'bbox' must have w, h > 0, got {ann['bbox']}")
            camera = dict(
                f=np.asarray(cam["f"], dtype=np.float64).reshape(2),
                c=np.asarray(cam["c"], dtype=np.float64).reshape(2),
            )
            data.append(
                self._sample(
                    ann.get("id", i),
                    img.get("file_name", ""),
                    x + w / 2 - 0.5,
                    y + h / 2 - 0.5,
                    w,
                    h,
                    uv,
                    np.ones(17),
                    x_cam,
                    camera,
                    info,
                )
            )
        return data, seen

    @staticmethod
    def _image_info(img: dict, rec: str) -> dict:
        if "subject" in img:
            subject = img["subject"]
            subject = f"S{int(subject)}" if not str(subject).startswith("S") else str(subject)
            return dict(
                subject=subject,
                action=str(img.get("action_name", img.get("action", img.get("action_idx", "")))),
                subaction=str(img.get("subaction", img.get("subaction_idx", ""))),
                camera_id=_camera_id(img.get("cam_idx", img.get("camera_id", ""))),
            )
        try:
            return parse_imgname(img.get("file_name", ""))
        except ValueError as err:
            raise ValueError(f"{rec}: image has no 'subject' field and {err}") from err

    def _sample(self, idx, name, cx, cy, w, h, uv, vis, x_cam_mm, camera, info) -> dict:
        path = osp.join(self.data_prefix["img"], name)
        if self.check_images and not osp.isfile(path):
            raise FileNotFoundError(f"{self.ann_file}: record {idx}: image not found: {path}")
        problem = image_file_problem(path) if self.check_images else None
        if problem:  # a truncated image would decode into a partly grey one
            raise ValueError(f"{self.ann_file}: record {idx}: image {path}: {problem}")
        # the box is stored xyxy in pixel-edge coordinates around the centre (index units)
        bbox = np.array(
            [cx + 0.5 - w / 2, cy + 0.5 - h / 2, cx + 0.5 + w / 2, cy + 0.5 + h / 2],
            dtype=np.float32,
        )
        return dict(
            id=idx,
            img_id=idx,
            img_path=path,
            bbox=bbox,
            bbox_score=np.float32(1.0),
            keypoints=np.asarray(uv, dtype=np.float32),
            keypoints_visible=(np.asarray(vis) > 0).astype(np.float32),
            keypoints_cam=np.asarray(x_cam_mm, dtype=np.float32),
            camera=camera,
            **info,
        )
