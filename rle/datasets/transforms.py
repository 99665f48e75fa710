"""Top-down training and test transforms (opencv + numpy; no mmcv).

Each transform is a callable ``results -> results`` on the data-sample dict described in
:mod:`rle.datasets`, registered in the ``rle`` transform registry and usable in an mmengine
``Compose``. A typical pipeline::

    LoadImage -> GetBBoxCenterScale -> RandomFlip -> RandomHalfBody -> RandomBBoxTransform
    -> TopdownAffine -> ColorJitter -> EncodeKeypoints -> PackPoseInputs

Geometry is applied once: flips, shifts, scales and rotations only change the box and a flip
flag, and :class:`TopdownAffine` warps the image once with the composed matrix (a flipped
image is never materialised at full size).

Randomness: :class:`RandomFlip`, :class:`RandomHalfBody`, :class:`RandomBBoxTransform` and
:class:`ColorJitter` draw only from ``results["rng"]``, the sample's own ``numpy`` generator
that the dataset derives from ``(seed, epoch, index)`` (:mod:`rle.datasets.sampler`): the
augmentation of a sample does not depend on which process made it or on what was drawn before,
so a resumed run repeats an uninterrupted one exactly. Without ``results["rng"]`` (a transform
used on its own) they draw from numpy's global generator: reproducible under ``np.random.seed``.

Joints outside the crop: :class:`EncodeKeypoints` gives them weight 0 by default
(``outside="zero"``): heatmap heads cannot represent them and the comparison between heads must
supervise the same joints. ``outside="keep"`` keeps regression supervision for them.
"""

from __future__ import annotations

from typing import Optional, Sequence

import cv2
import numpy as np
import torch

from rle.coords import index_to_norm, norm_to_index
from rle.datasets.geometry import (
    box_center,
    check_convention,
    fix_aspect_ratio,
    flip_center_x,
    get_warp_matrix,
    warp_points,
)
from rle.registry import TRANSFORMS

__all__ = [
    "ColorJitter",
    "EncodeKeypoints",
    "GetBBoxCenterScale",
    "LoadImage",
    "NormalizeImage",
    "PackPoseInputs",
    "RandomBBoxTransform",
    "RandomFlip",
    "RandomHalfBody",
    "TopdownAffine",
    "encoded_image_problem",
    "image_file_problem",
    "keypoints_to_image",
]

COCO_UPPER_BODY = tuple(range(11))


def _rng(results):
    # training samples carry their own generator, keyed by (seed, epoch, index) (module
    # docstring); a transform called on a bare dict falls back to numpy's global generator,
    # reproducible under np.random.seed
    rng = results.get("rng")
    return rng if rng is not None else np.random.mtrand._rand


def _convention(transform, results) -> str:
    """The pixel convention of a sample: the transform's own setting if it has one (it must then
    agree with the sample's), else the sample's ``results["convention"]`` (set by the
    dataset), else ``"rle"``."""
    theirs = results.get("convention")
    mine = transform.convention
    if mine is not None and theirs is not None and mine != theirs:
        raise ValueError(
            f"{type(transform).__name__}(convention={mine!r}) on a sample of convention "
            f"{theirs!r} (set the convention once, in the dataset or the config)"
        )
    return mine or theirs or "rle"


def _uniform(rng, low, high):
    return float(rng.uniform(low, high))


_JPEG_SOI, _JPEG_EOI = b"\xff\xd8", b"\xff\xd9"
_PNG_SIGNATURE, _PNG_IEND = b"\x89PNG\r\n\x1a\n", b"IEND\xaeB`\x82"  # IEND chunk type + its CRC
_TAIL_BYTES = 1024  # what the load-time check reads from the end of a file


def _jpeg_has_end(data: bytes) -> bool:
    """Whether the JPEG stream ``data`` reaches its end-of-image marker: walks the marker
    segments (skipping each by its length, the scans by their entropy-coded bytes), so trailing
    data after the image (motion photos) is accepted and an embedded thumbnail's EOI is not
    mistaken for the image's."""
    pos, n = 2, len(data)
    while pos + 2 <= n:
        if data[pos] != 0xFF:
            return False
        marker = data[pos + 1]
        if marker == 0xD9:
            return True
        if marker in (0xFF, 0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            pos += 1 if marker == 0xFF else 2  # a fill byte, or a marker without a length
            continue
        if pos + 4 > n:
            return False
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker == 0xDA:  # start of scan: entropy-coded data up to the next real marker
            while True:
                pos = data.find(b"\xff", pos)
                if pos < 0 or pos + 1 >= n:
                    return False
                if data[pos + 1] in (0x00, 0xFF) or 0xD0 <= data[pos + 1] <= 0xD7:
                    pos += 1 if data[pos + 1] == 0xFF else 2  # stuffing, fill, restart
                    continue
                break
    return False


def encoded_image_problem(data: bytes) -> Optional[str]:
    """Why the encoded image ``data`` is unusable, or ``None``.

    A JPEG must reach its end-of-image marker ``FF D9`` and a PNG must have its ``IEND`` chunk:
    a file cut short still decodes (libjpeg fills the missing part with grey and only prints a
    warning), so decoding alone does not detect it. Other formats are only checked by decoding.
    """
    if not data:
        return "the file is empty"
    if data.startswith(_JPEG_SOI):
        # fast path: nearly every JPEG ends with the marker (trailing NUL padding allowed)
        if data.rstrip(b"\x00").endswith(_JPEG_EOI) or _jpeg_has_end(data):
            return None
        return "truncated JPEG (no end-of-image marker FF D9)"
    if data.startswith(_PNG_SIGNATURE) and _PNG_IEND not in data:
        return "truncated PNG (no IEND chunk)"
    return None


def image_file_problem(path: str) -> Optional[str]:
    """:func:`encoded_image_problem` of the file ``path``, reading only its first bytes and its
    last ``1024`` unless the end is not where a complete JPEG or PNG ends (the dataset loaders'
    cheap load-time check; :class:`LoadImage` checks the full bytes it decodes)."""
    with open(path, "rb") as f:
        head = f.read(len(_PNG_SIGNATURE))
        if head.startswith(_JPEG_SOI):
            end = _JPEG_EOI
        elif head.startswith(_PNG_SIGNATURE):
            end = _PNG_IEND
        else:
            return encoded_image_problem(head)  # empty, or a format checked by decoding
        size = f.seek(0, 2)
        f.seek(max(size - _TAIL_BYTES, 0))
        if f.read().rstrip(b"\x00").endswith(end):
            return None
        f.seek(0)
        return encoded_image_problem(f.read())


@TRANSFORMS.register_module()
class LoadImage:
    """Read ``img_path`` into ``img`` (H, W, 3) uint8 BGR.

    The file's bytes are checked (:func:`encoded_image_problem`: a truncated JPEG or PNG is
    refused, not decoded into a partly grey image) and decoded with ``cv2.imdecode`` (EXIF
    orientation applied, as ``cv2.imread``).

    Args:
        backend_args: mmengine file backend arguments (``None`` = local files).
        to_rgb: convert to RGB.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is truncated or cannot be decoded (naming the file and the sample).
    """

    def __init__(self, backend_args: Optional[dict] = None, to_rgb: bool = False) -> None:
        self.backend_args = backend_args
        self.to_rgb = to_rgb

    def __call__(self, results: dict) -> dict:
        path = results["img_path"]
        if self.backend_args is None:
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except FileNotFoundError:
                raise FileNotFoundError(f"cannot read image {path}: file not found") from None
        else:
            from mmengine.fileio import get

            data = get(path, backend_args=self.backend_args)
        problem = encoded_image_problem(data)
        img = None if problem else cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            sample = f" (sample id {results['id']})" if results.get("id") is not None else ""
            raise ValueError(
                f"cannot read image {path}{sample}: {problem or 'not a decodable image'}"
            )
        if self.to_rgb:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        results["img"] = img
        results["img_shape"] = img.shape[:2]
        results["ori_shape"] = img.shape[:2]
        return results


@TRANSFORMS.register_module()
class GetBBoxCenterScale:
    """``bbox`` (xyxy, pixel edges) -> ``bbox_center`` (index units) and ``bbox_scale``
    (w, h) times ``padding`` (the aspect ratio is fixed later by :class:`TopdownAffine`).

    ``convention`` (``None``: the sample's): ``"rle"`` centre ``(x1 + x2)/2 - 0.5`` in float64,
    ``"mmpose"`` MMPose's ``(x1 + x2)/2`` and scale in float32
    (:func:`rle.datasets.geometry.box_center`)."""

    def __init__(self, padding: float = 1.25, convention: Optional[str] = None) -> None:
        self.padding = padding
        self.convention = None if convention is None else check_convention(convention)

    def __call__(self, results: dict) -> dict:
        convention = _convention(self, results)
        dtype = np.float32 if convention == "mmpose" else np.float64
        box = np.asarray(results["bbox"], dtype=dtype).reshape(4)
        results["bbox_center"] = box_center(box, convention)
        results["bbox_scale"] = (box[2:] - box[:2]) * self.padding
        return results


@TRANSFORMS.register_module()
class RandomFlip:
    """Horizontal flip with left/right swap (``flip_indices`` from the dataset meta).

    The image is not flipped here: the flag is folded into the crop warp. Keypoints (and 3-D
    camera keypoints) are mirrored and swapped now, so later transforms see flipped data. The
    box centre is mirrored in the sample's convention (:func:`rle.datasets.geometry.flip_center_x`).
    """

    def __init__(self, prob: float = 0.5, convention: Optional[str] = None) -> None:
        if not 0 <= prob <= 1:
            raise ValueError(f"prob must be in [0, 1], got {prob}")
        self.prob = prob
        self.convention = None if convention is None else check_convention(convention)

    def __call__(self, results: dict) -> dict:
        flip = _uniform(_rng(results), 0, 1) < self.prob
        results["flip"] = bool(flip)
        if not flip:
            return results
        width = results["img_shape"][1]
        idx = np.asarray(results["flip_indices"])
        kpts = results["keypoints"][idx].copy()
        kpts[:, 0] = (width - 1) - kpts[:, 0]
        results["keypoints"] = kpts
        results["keypoints_visible"] = results["keypoints_visible"][idx].copy()
        if "keypoints_cam" in results:
            cam = results["keypoints_cam"][idx].copy()
            cam[:, 0] = -cam[:, 0]
            results["keypoints_cam"] = cam
        center = np.array(results["bbox_center"])
        center[0] = flip_center_x(center[0], width, _convention(self, results))
        results["bbox_center"] = center
        return results


@TRANSFORMS.register_module()
class RandomHalfBody:
    """With probability ``prob``, crop around the upper or the lower body (visible joints).

    Args:
        upper_body_ids: keypoint indices of the upper body (COCO: 0..10).
        min_total_keypoints: only when at least this many joints are visible.
        min_half_keypoints: the chosen half needs at least this many visible joints.
        padding: box padding around the chosen joints.
    """

    def __init__(
        self,
        prob: float = 0.3,
        upper_body_ids: Sequence[int] = COCO_UPPER_BODY,
        min_total_keypoints: int = 9,
        min_half_keypoints: int = 3,
        padding: float = 1.5,
    ) -> None:
        self.prob = prob
        self.upper = set(upper_body_ids)
        self.min_total = min_total_keypoints
        self.min_half = min_half_keypoints
        self.padding = padding

    def __call__(self, results: dict) -> dict:
        vis = results["keypoints_visible"] > 0
        rng = _rng(results)
        if vis.sum() < self.min_total or _uniform(rng, 0, 1) >= self.prob:
            return results
        upper = np.array([i in self.upper for i in range(len(vis))])
        halves = [vis & upper, vis & ~upper]
        if _uniform(rng, 0, 1) < 0.5:
            halves.reverse()
        for half in halves:
            if half.sum() >= self.min_half:
                pts = results["keypoints"][half]
                lo, hi = pts.min(0), pts.max(0)
                results["bbox_center"] = (lo + hi) / 2
                results["bbox_scale"] = np.maximum(hi - lo, 1.0) * self.padding
                break
        return results


@TRANSFORMS.register_module()
class RandomBBoxTransform:
    """Random shift, scale and rotation of the box (the crop augmentation).

    Args:
        shift_factor, shift_prob: centre shift up to ``shift_factor * scale``.
        scale_factor: box scale range ``(low, high)``; ``scale_prob`` how often.
        rotate_factor, rotate_prob: rotation in degrees, ``N(0, rotate_factor)`` clipped at
            2 sigma, applied with ``rotate_prob``.
    """

    def __init__(
        self,
        shift_factor: float = 0.16,
        shift_prob: float = 0.3,
        scale_factor: Sequence[float] = (0.75, 1.25),
        scale_prob: float = 1.0,
        rotate_factor: float = 30.0,
        rotate_prob: float = 0.6,
    ) -> None:
        self.shift_factor = shift_factor
        self.shift_prob = shift_prob
        self.scale_factor = tuple(scale_factor)
        self.scale_prob = scale_prob
        self.rotate_factor = rotate_factor
        self.rotate_prob = rotate_prob

    def __call__(self, results: dict) -> dict:
        rng = _rng(results)
        scale = np.asarray(results["bbox_scale"], dtype=np.float64)
        center = np.asarray(results["bbox_center"], dtype=np.float64)
        if _uniform(rng, 0, 1) < self.shift_prob:
            center = center + rng.uniform(-1, 1, 2) * self.shift_factor * scale
        if _uniform(rng, 0, 1) < self.scale_prob:
            scale = scale * _uniform(rng, *self.scale_factor)
        rotation = 0.0
        if _uniform(rng, 0, 1) < self.rotate_prob:
            rotation = float(
                np.clip(
                    rng.normal(0, self.rotate_factor),
                    -2 * self.rotate_factor,
                    2 * self.rotate_factor,
                )
            )
        results["bbox_center"], results["bbox_scale"] = center, scale
        results["bbox_rotation"] = rotation
        return results


@TRANSFORMS.register_module()
class TopdownAffine:
    """Warp the box into an ``input_size = (w, h)`` crop (bilinear), flip folded in.

    Sets ``img`` (h, w, 3), ``input_size``, ``input_center``, ``input_scale`` (aspect-fixed
    box), ``warp_mat`` (image -> crop index units, flip excluded: the frame of the (mirrored)
    keypoints), ``transformed_keypoints`` and ``convention`` (the sample's pixel convention,
    which decoding must use: :func:`keypoints_to_image`).
    """

    def __init__(
        self, input_size: Sequence[int] = (192, 256), convention: Optional[str] = None
    ) -> None:
        w, h = (int(v) for v in input_size)
        if w < 1 or h < 1:
            raise ValueError(f"input_size must be positive (w, h), got {input_size}")
        self.input_size = (w, h)
        self.convention = None if convention is None else check_convention(convention)

    def __call__(self, results: dict) -> dict:
        w, h = self.input_size
        convention = _convention(self, results)
        scale = fix_aspect_ratio(results["bbox_scale"], w / h, convention)
        dtype = np.float32 if convention == "mmpose" else np.float64
        center = np.asarray(results["bbox_center"], dtype=dtype)
        mat = get_warp_matrix(
            center, scale, results.get("bbox_rotation", 0.0), (w, h), convention=convention
        )
        if results.get("flip"):
            # keypoints and centre are already mirrored; the image is mirrored by the warp:
            # pre-compose x -> (W - 1) - x on the source image
            width = results["img_shape"][1]
            mirror = np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
            img_mat = mat @ mirror
        else:
            img_mat = mat
        results["img"] = cv2.warpAffine(
            results["img"], img_mat, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
        )
        results["input_size"] = (w, h)
        results["convention"] = convention
        results["input_center"] = center
        results["input_scale"] = scale
        results["warp_mat"] = mat
        results["transformed_keypoints"] = warp_points(results["keypoints"], mat)
        return results


def keypoints_to_image(
    coords: np.ndarray,
    input_size: Sequence[int],
    center,
    scale,
    rotation: float = 0.0,
    convention: str = "rle",
) -> np.ndarray:
    """Decode normalised crop coordinates ``(..., K, 2)`` back to image index units with the
    inverse of :class:`TopdownAffine`'s warp in the crop's ``convention`` (exact for ``"rle"``;
    MMPose's own float32 inverse for ``"mmpose"``). The result is in the frame the keypoints
    were in when the crop was made (the mirrored image for a sample that :class:`RandomFlip`
    flipped)."""
    w, h = input_size
    idx = norm_to_index(np.asarray(coords, dtype=np.float64), np.array([w, h]))
    inv = get_warp_matrix(center, scale, rotation, (w, h), inv=True, convention=convention)
    return warp_points(idx, inv)


@TRANSFORMS.register_module()
class ColorJitter:
    """Brightness, contrast and saturation jitter (factors in ``[1 - x, 1 + x]``) and a hue
    shift in degrees, on the uint8 BGR crop, each applied with probability ``prob``."""

    def __init__(
        self,
        brightness: float = 0.2,
        contrast: float = 0.2,
        saturation: float = 0.2,
        hue: float = 10.0,
        prob: float = 0.5,
    ) -> None:
        self.brightness, self.contrast = brightness, contrast
        self.saturation, self.hue, self.prob = saturation, hue, prob

    def __call__(self, results: dict) -> dict:
        rng = _rng(results)
        img = results["img"].astype(np.float32)
        if _uniform(rng, 0, 1) < self.prob:
            img *= _uniform(rng, 1 - self.brightness, 1 + self.brightness)
        if _uniform(rng, 0, 1) < self.prob:
            mean = img.mean()
            img = (img - mean) * _uniform(rng, 1 - self.contrast, 1 + self.contrast) + mean
        if _uniform(rng, 0, 1) < self.prob or _uniform(rng, 0, 1) < self.prob:
            hsv = cv2.cvtColor(np.clip(img, 0, 255).astype(np.uint8), cv2.COLOR_BGR2HSV)
            hsv = hsv.astype(np.float32)
            hsv[..., 1] *= _uniform(rng, 1 - self.saturation, 1 + self.saturation)
            hsv[..., 0] = (hsv[..., 0] + _uniform(rng, -self.hue, self.hue) / 2) % 180
            img = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2BGR)
        results["img"] = np.clip(img, 0, 255).astype(np.uint8)
        return results


@TRANSFORMS.register_module()
class NormalizeImage:
    """``(img - mean) / std`` on the crop -> float32 **channels first** (3, h, w), in one OpenCV
    call; ``to_rgb`` swaps BGR to RGB first (``mean``/``std`` are given in the output order).
    Sets ``img_layout = "CHW"``. (The model's data preprocessor can normalise on the device
    instead; the configs do that.)"""

    def __init__(
        self, mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375), to_rgb: bool = True
    ) -> None:
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f"mean and std must have 3 values, got {mean} and {std}")
        params = cv2.dnn.Image2BlobParams()
        params.scalefactor = tuple(1.0 / float(v) for v in std) + (0.0,)
        params.mean = tuple(float(v) for v in mean) + (0.0,)
        params.swapRB = bool(to_rgb)
        params.ddepth = cv2.CV_32F
        self.params = params

    def __call__(self, results: dict) -> dict:
        results["img"] = cv2.dnn.blobFromImageWithParams(results["img"], self.params)[0]
        results["img_layout"] = "CHW"
        return results


@TRANSFORMS.register_module()
class EncodeKeypoints:
    """Targets in the normalised crop convention with per-joint weights.

    ``keypoint_labels`` (K, 2) from the transformed keypoints; ``keypoint_weights`` (K,) = 1 for
    labelled joints (v > 0) and 0 otherwise; joints outside the crop get 0 unless
    ``outside="keep"``. An unlabelled joint (v = 0) with NaN or infinite coordinates gets the
    label 0 (never NaN); a labelled one raises ``ValueError`` naming the sample and the joints.

    3-D (``keypoints_cam`` present and ``num_dims=3``): ``keypoint_labels`` (K, 3) with the
    root-relative depth ``(z - z_root) / depth_scale`` (mm, 2000 as the references), weight 0
    when any of the three is outside ``[-0.5, 0.5]`` (``outside="zero"``).
    """

    def __init__(
        self,
        num_dims: int = 2,
        outside: str = "zero",
        root_index: int = 0,
        depth_scale: float = 2000.0,
    ) -> None:
        if num_dims not in (2, 3):
            raise ValueError(f"num_dims must be 2 or 3, got {num_dims}")
        if outside not in ("zero", "keep"):
            raise ValueError(f"outside must be 'zero' or 'keep', got {outside!r}")
        self.num_dims, self.outside = num_dims, outside
        self.root_index, self.depth_scale = root_index, depth_scale

    def __call__(self, results: dict) -> dict:
        w, h = results["input_size"]
        labels = index_to_norm(results["transformed_keypoints"], np.array([w, h]))
        if self.num_dims == 3:
            if "keypoints_cam" not in results:
                raise KeyError("EncodeKeypoints(num_dims=3) needs 'keypoints_cam' (K, 3) in mm")
            z = results["keypoints_cam"][:, 2]
            depth = (z - z[self.root_index]) / self.depth_scale
            labels = np.concatenate([labels, depth[:, None]], axis=1)
        labelled = np.asarray(results["keypoints_visible"]) > 0
        finite = np.isfinite(labels).all(axis=1)
        if not finite.all():
            if (labelled & ~finite).any():
                raise ValueError(
                    f"{results.get('img_path')} (sample id {results.get('id')}): keypoints "
                    f"{np.flatnonzero(labelled & ~finite).tolist()} are labelled (visible > 0) "
                    "but their coordinates (or depth) are NaN or infinite"
                )
            # an unlabelled joint's label is never supervised, but 0 * NaN is NaN in a loss
            labels = np.where(finite[:, None], labels, 0.0)
        weights = labelled.astype(np.float32)
        if self.outside == "zero":
            inside = (np.abs(labels) <= 0.5).all(axis=1)
            weights = weights * inside
        results["keypoint_labels"] = labels.astype(np.float32)
        results["keypoint_weights"] = weights.astype(np.float32)
        return results


@TRANSFORMS.register_module()
class PackPoseInputs:
    """Pack into ``dict(inputs=tensor (3, h, w), data_samples=BaseDataElement)``.

    ``inputs`` keeps the image dtype (uint8 unless normalised), channels first. The data
    sample (an mmengine ``BaseDataElement``, so that collation keeps one per instance) carries
    the tensors ``keypoint_labels`` (K, D) and ``keypoint_weights`` (K,), the ground-truth
    ``keypoints`` / ``keypoints_visible`` / ``keypoints_cam`` arrays, and as metainfo what the
    decoder and the metrics need (ids, box, ``input_center``, ``input_scale``, flip ...).
    """

    META_KEYS = (
        "id",
        "img_id",
        "img_path",
        "img_shape",
        "ori_shape",
        "input_size",
        "input_center",
        "input_scale",
        "bbox",
        "bbox_score",
        "bbox_rotation",
        "flip",
        "flip_indices",
        "convention",
        "category_id",
        "area",
        "iscrowd",
        "num_keypoints",
        "subject",
        "action",
        "camera_id",
        "camera",
    )

    def __init__(self, meta_keys: Optional[Sequence[str]] = None) -> None:
        self.meta_keys = tuple(meta_keys) if meta_keys is not None else self.META_KEYS

    def __call__(self, results: dict) -> dict:
        from mmengine.structures import BaseDataElement

        img = torch.from_numpy(results["img"])
        if results.get("img_layout", "HWC") == "HWC":
            # a channels-first view: the collate's stack makes the one copy
            img = img.permute(2, 0, 1)
        sample = BaseDataElement(metainfo={k: results[k] for k in self.meta_keys if k in results})
        for key in ("keypoint_labels", "keypoint_weights"):
            if key in results:
                sample.set_field(torch.from_numpy(results[key]), key)
        for key in ("keypoints", "keypoints_visible", "keypoints_cam"):
            if key in results:
                sample.set_field(np.asarray(results[key], dtype=np.float32), key)
        return dict(inputs=img, data_samples=sample)
