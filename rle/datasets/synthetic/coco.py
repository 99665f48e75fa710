"""The SynthCOCO writer: synthetic people in the genuine COCO person-keypoints format.

:func:`generate_synth_coco` writes::

    root/images/{train,val}/{image_id:012d}.jpg
    root/annotations/person_keypoints_{train,val}.json     genuine COCO person-keypoints json
    root/annotations/person_detections_val.json            [{bbox, category_id, image_id, score}]
    root/.complete                                         generation parameters (json)

with 1-3 people per image (random yaw, camera elevation, mild perspective, in-plane rotation,
scale and translation), random occluders and natural truncation. ``person_height``,
``max_people``, ``clutter``, ``max_yaw`` and ``roll`` make an easier set (larger people, fewer
of them, a plainer background, fewer occluders, people facing the camera, upright) without
changing the format; their defaults (:data:`COCO_OPTION_DEFAULTS`) give the above.
Keypoints are in image index units (pixel centre = integer, as :mod:`rle.datasets.geometry`),
boxes in COCO pixel-edge units; the category is COCO's own
(:data:`rle.datasets.coco.COCO_PERSON_CATEGORY`).
Visibility: ``v = 0`` and ``x = y = 0`` outside the image; ``v = 1`` when the pixel is covered
by an occluder, another person or a non-adjacent part of the same person (an arm behind the
torso), or for a face point turned away from the camera; ``v = 2`` otherwise.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

import cv2
import numpy as np
from tqdm import tqdm

from rle.datasets.coco import COCO_PERSON_CATEGORY
from rle.datasets.h36m import H36M_ACTIONS
from rle.datasets.synthetic import render, store
from rle.datasets.synthetic.body import (
    ACTION_STYLE,
    COCO_FROM_BODY,
    HEAD_C,
    body_height,
    rot,
    sample_bodies,
    sample_proportions,
)
from rle.datasets.synthetic.checks import (
    PathLike,
    check_int,
    check_number,
    check_root,
    check_seed,
    check_size,
)

__all__ = ["COCO_OPTION_DEFAULTS", "SYNTH_COCO", "ensure_synth_coco", "generate_synth_coco"]

#: the difficulty options of :func:`generate_synth_coco` and their defaults
COCO_OPTION_DEFAULTS: Dict[str, Any] = {
    "person_height": [0.35, 0.95],
    "max_people": 3,
    "clutter": 1.0,
    "max_yaw": 180.0,
    "roll": 1.0,
}

# Parts (render.PARTS ids) that may cover each COCO keypoint without hiding it: the limbs
# meeting at the joint.
_COCO_OWN_PARTS = (
    (3,), (3,), (3,), (3,), (3,), (1, 4), (1, 7), (4, 5), (7, 8), (5, 6), (8, 9),
    (1, 10), (1, 13), (10, 11), (13, 14), (11, 12), (14, 15),
)  # fmt: skip
_OWN_TABLE = np.zeros((17, 16), dtype=bool)
for _k, _parts in enumerate(_COCO_OWN_PARTS):
    _OWN_TABLE[_k, list(_parts)] = True
_OCCLUDER_LABEL = 255


def _check_person_height(person_height: Any) -> List[float]:
    try:
        lo, hi = (float(v) for v in person_height)
    except (TypeError, ValueError):
        raise ValueError(
            f"person_height must be (low, high) fractions of the image height, got "
            f"{person_height!r}"
        ) from None
    if not 0 < lo <= hi <= 2:
        raise ValueError(f"person_height must satisfy 0 < low <= high <= 2, got {person_height!r}")
    return [lo, hi]


def _coco_params(
    num_train_images: Any,
    num_val_images: Any,
    image_size: Any,
    seed: Any,
    person_height: Any,
    max_people: Any,
    clutter: Any,
    max_yaw: Any,
    roll: Any,
) -> Dict[str, Any]:
    params = {
        "generator": "synth_coco",
        "version": store.FORMAT_VERSION,
        "num_train_images": check_int(num_train_images, "num_train_images", 1),
        "num_val_images": check_int(num_val_images, "num_val_images", 1),
        "image_size": list(check_size(image_size)),
        "seed": check_seed(seed),
    }
    extra = {
        "person_height": _check_person_height(person_height),
        "max_people": check_int(max_people, "max_people", 1),
        "clutter": check_number(clutter, "clutter", 0, 4),
        "max_yaw": check_number(max_yaw, "max_yaw", 0, 180),
        "roll": check_number(roll, "roll", 0, 1),
    }
    # only non-default options are recorded: folders made before they existed stay valid
    params.update({k: v for k, v in extra.items() if v != COCO_OPTION_DEFAULTS[k]})
    return params


def _coco_paths(root: Path) -> Dict[str, Path]:
    ann = root / "annotations"
    return {
        "root": root,
        "train_images": root / "images" / "train",
        "val_images": root / "images" / "val",
        "train_json": ann / "person_keypoints_train.json",
        "val_json": ann / "person_keypoints_val.json",
        "val_detections": ann / "person_detections_val.json",
    }


def _gauss_clip(
    rng: np.random.Generator, mu: float, sd: float, lo: float, hi: float, n: int
) -> np.ndarray:
    """Clipped normal samples, shape (n,)."""
    return np.clip(rng.normal(mu, sd, n), lo, hi)


def _coco_image(
    rng: np.random.Generator,
    width: int,
    height: int,
    person_height: Sequence[float],
    max_people: int,
    clutter: float,
    max_yaw: float,
    roll: float,
) -> Tuple[np.ndarray, List[Dict[str, Any]]]:
    """Render one image with 1 to ``max_people`` people; return it and their COCO annotation
    fields. ``person_height``: standing height range as a fraction of the image height;
    ``clutter``: scales the number of background shapes and occluders; ``max_yaw``: largest
    angle (degrees) between the direction a person faces and the direction to the camera;
    ``roll``: scales the in-plane rotation."""
    n = int(rng.integers(1, max_people + 1))
    bones = sample_proportions(rng, n, 0.06)
    body = sample_bodies(rng, ACTION_STYLE[rng.integers(0, len(H36M_ACTIONS), n)], bones)
    # Camera: person yaw, camera elevation, mild perspective, in-plane roll, scale, position.
    if max_yaw >= 180.0:
        yaw = rng.uniform(0, 2 * np.pi, n)
    else:  # yaw = pi faces the camera
        yaw = np.pi + np.radians(rng.uniform(-max_yaw, max_yaw, n))
    elev = np.radians(_gauss_clip(rng, 10, 10, -20, 45, n))
    to_cam = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])  # (x, y, z-up) -> (x, y-down, depth)
    rotation = rot(0, elev) @ to_cam @ rot(2, yaw)
    cam = np.einsum("nij,nkj->nki", rotation, body)  # (n, 23, 3) mm, pelvis at 0
    dist = rng.uniform(2500, 9000, (n, 1))
    persp = dist / (dist + cam[:, :, 2])
    angle = np.radians(np.where(rng.random(n) < 0.04, rng.uniform(-180, 180, n), 0.0))
    angle = (angle + np.radians(_gauss_clip(rng, 0, 10, -40, 40, n))) * roll
    c, s = np.cos(angle)[:, None], np.sin(angle)[:, None]
    x, y = cam[:, :, 0] * persp, cam[:, :, 1] * persp
    # pixels per mm at the pelvis
    px = rng.uniform(person_height[0], person_height[1], n) * height / body_height(bones)
    centre = rng.uniform((0.08 * width, 0.3 * height), (0.92 * width, 0.78 * height), (n, 2))
    uv = np.stack([c * x - s * y, s * x + c * y], -1) * px[:, None, None] + centre[:, None]
    px_mm = px[:, None] * persp
    depth = dist + cam[:, :, 2]

    img = render.textured_background(rng, width, height, clutter)
    label = np.zeros((height, width), np.uint8)
    masks = np.zeros((n, height, width), np.uint8)
    order = np.argsort(px, kind="stable")  # nearer (larger) people are drawn last
    for rank, i in enumerate(order):
        render.render_body(
            img, uv[i], px_mm[i], depth[i], render.person_colours(rng), float(dist[i, 0]), 1.5,
            label=label, label_base=16 * rank, mask=masks[i],
        )  # fmt: skip
    for _ in range(int(round(clutter * int(rng.choice([0, 0, 1, 1, 2]))))):
        i = int(rng.integers(0, n))
        size = float(px[i] * body_height(bones[i : i + 1])[0] * rng.uniform(0.12, 0.35))
        at = uv[i, COCO_FROM_BODY[rng.integers(0, 17)]] + rng.normal(0, 0.3 * size, 2)
        col = render.bgr(render.colour(rng, 0, 255))
        render.random_shape(rng, [(img, col), (label, _OCCLUDER_LABEL)], at, size)
    img = render.add_grain(rng, img)

    anns = []
    rank_of = np.empty(n, int)
    rank_of[order] = np.arange(n)
    for i in range(n):
        kp = np.round(uv[i, COCO_FROM_BODY], 2)
        inside = (kp[:, 0] >= 0) & (kp[:, 0] <= width - 1) & (kp[:, 1] >= 0)
        inside &= kp[:, 1] <= height - 1
        ix = np.clip(np.round(kp[:, 0]).astype(int), 0, width - 1)
        iy = np.clip(np.round(kp[:, 1]).astype(int), 0, height - 1)
        lab = label[iy, ix].astype(int)
        own = (lab // 16 == rank_of[i]) & _OWN_TABLE[np.arange(17), lab % 16]
        hidden = (lab != 0) & ~own
        # face points turned away from the camera are labelled but not visible
        normal = cam[i, COCO_FROM_BODY[:5]] - cam[i, HEAD_C]
        hidden[:5] |= normal[:, 2] > 0.3 * np.linalg.norm(normal, axis=1)
        v = np.where(inside, np.where(hidden, 1, 2), 0)
        kp[v == 0] = 0.0
        x0, y0, bw, bh = cv2.boundingRect(masks[i])
        contours, _ = cv2.findContours(masks[i], cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        # cv2 contours run through pixel centres; COCO polygons are in pixel-edge units
        seg = [
            [round(float(t), 2) for t in (cnt.reshape(-1, 2) + 0.5).ravel()]
            for cnt in contours
            if len(cnt) >= 3
        ]
        if not seg:
            seg = [[x0, y0, x0 + bw, y0, x0 + bw, y0 + bh, x0, y0 + bh]]
        anns.append(
            {
                "segmentation": seg,
                "num_keypoints": int((v > 0).sum()),
                "area": float(cv2.countNonZero(masks[i])),
                "iscrowd": 0,
                "keypoints": [
                    t for j in range(17) for t in (float(kp[j, 0]), float(kp[j, 1]), int(v[j]))
                ],
                "bbox": [float(x0), float(y0), float(bw), float(bh)],
            }
        )
    return img, anns


def _coco_detections(
    rng: np.random.Generator, anns: List[Dict[str, Any]], image_id: int, width: int, height: int
) -> List[Dict[str, Any]]:
    """Detector-like boxes: jittered ground truth (score 0.6-1) plus rare false positives."""
    boxes = []
    for ann in anns:
        x, y, w, h = ann["bbox"]
        w2, h2 = w * math.exp(rng.normal(0, 0.08)), h * math.exp(rng.normal(0, 0.08))
        cx, cy = x + w / 2 + rng.normal(0, 0.05) * w, y + h / 2 + rng.normal(0, 0.05) * h
        boxes.append((cx - w2 / 2, cy - h2 / 2, cx + w2 / 2, cy + h2 / 2, rng.uniform(0.6, 1.0)))
    for _ in range(int(rng.random() < 0.3) + int(rng.random() < 0.1)):
        w, h = rng.uniform(0.1, 0.4) * width, rng.uniform(0.2, 0.6) * height
        x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
        boxes.append((x, y, x + w, y + h, rng.uniform(0.05, 0.4)))
    out = []
    for x0, y0, x1, y1, score in boxes:
        x0, x1 = np.clip([x0, x1], 0, width)
        y0, y1 = np.clip([y0, y1], 0, height)
        bbox = [round(float(v), 2) for v in (x0, y0, x1 - x0, y1 - y0)]
        out.append({"bbox": bbox, "category_id": 1, "image_id": image_id, "score": round(score, 4)})
    return out


def generate_synth_coco(
    root: PathLike,
    num_train_images: int = 2000,
    num_val_images: int = 500,
    image_size: Tuple[int, int] = (256, 192),
    seed: int = 0,
    progress: bool = True,
    person_height: Tuple[float, float] = (0.35, 0.95),
    max_people: int = 3,
    clutter: float = 1.0,
    max_yaw: float = 180.0,
    roll: float = 1.0,
) -> Dict[str, Path]:
    """Generate SynthCOCO: COCO person-keypoints json + JPEG images (see module docstring).

    Args:
        root: output folder (str or path); a previous synthetic generation in it is replaced.
        num_train_images: images in the train split (>= 1); about 2 people per image.
        num_val_images: images in the val split (>= 1).
        image_size: (width, height) in pixels, each >= 32.
        seed: seed of the single ``np.random.default_rng`` driving everything.
        progress: show a tqdm progress bar.
        person_height: (low, high) standing height of a person as a fraction of the image
            height, drawn uniformly (before perspective, pose and truncation).
        max_people: people per image are drawn from 1..max_people.
        clutter: scales the number of background shapes and of occluders (0 = plain
            textured background, no occluders; at most 4).
        max_yaw: largest angle in degrees between the direction a person faces and the
            direction to the camera, drawn uniformly (180 = any direction; smaller values
            make left and right easier to tell apart).
        roll: scales the in-plane rotation of people (1 = about 10 degrees s.d. and 4 % at
            any angle, upside down included; 0 = upright).

    The defaults give the standard SynthCOCO; other values of the last five are recorded
    in ``root/.complete`` (the defaults are not, so older folders stay valid).

    Returns:
        Paths: ``root``, ``train_images``, ``val_images`` (image folders), ``train_json``,
        ``val_json`` (annotation files) and ``val_detections`` (detection-box file).

    Raises:
        TypeError, ValueError: an invalid argument (the message names it).
        FileExistsError: ``root`` holds image/annotation folders not written by this module.
    """
    root = check_root(root)
    params = _coco_params(
        num_train_images, num_val_images, image_size, seed, person_height, max_people, clutter,
        max_yaw, roll,
    )  # fmt: skip
    look = {k: params.get(k, v) for k, v in COCO_OPTION_DEFAULTS.items()}
    width, height = params["image_size"]
    paths = _coco_paths(root)
    store.start(root, params, ("images", "annotations"))
    rng = np.random.default_rng(params["seed"])
    info = {
        "description": "SynthCOCO: synthetic person keypoints in the COCO format (rle-pose)",
        "version": "1.0",
        "year": 2024,
        "contributor": "rle-pose synthetic generator",
        "seed": params["seed"],
    }
    licenses = [
        {"url": "https://creativecommons.org/publicdomain/zero/1.0/", "id": 1, "name": "CC0 1.0"}
    ]
    image_id = ann_id = 0
    detections: List[Dict[str, Any]] = []
    total = params["num_train_images"] + params["num_val_images"]
    bar = tqdm(total=total, desc="SynthCOCO", unit="img", disable=not progress)
    for split in ("train", "val"):
        folder = paths[f"{split}_images"]
        folder.mkdir(parents=True, exist_ok=True)
        images, annotations = [], []
        for _ in range(params[f"num_{split}_images"]):
            image_id += 1
            img, anns = _coco_image(rng, width, height, **look)
            file_name = f"{image_id:012d}.jpg"
            store.write_jpeg(folder / file_name, img)
            images.append(
                {"license": 1, "file_name": file_name, "height": height, "width": width,
                 "id": image_id}
            )  # fmt: skip
            for ann in anns:
                ann_id += 1
                annotations.append({**ann, "image_id": image_id, "category_id": 1, "id": ann_id})
            if split == "val":
                detections += _coco_detections(rng, anns, image_id, width, height)
            bar.update(1)
        coco = {
            "info": info,
            "licenses": licenses,
            "categories": [COCO_PERSON_CATEGORY],
            "images": images,
            "annotations": annotations,
        }
        store.dump_json(coco, paths[f"{split}_json"])
    bar.close()
    store.dump_json(detections, paths["val_detections"])
    store.finish(root, params)
    return paths


def _num_images(params: Dict[str, Any]) -> int:
    return params["num_train_images"] + params["num_val_images"]


#: SynthCOCO as :func:`rle.datasets.synthetic.store.ensure` and ``make`` take it
SYNTH_COCO = store.SynthSet(generate_synth_coco, _coco_params, _coco_paths, _num_images)


def ensure_synth_coco(root: PathLike, **kwargs: Any) -> Dict[str, Path]:
    """:func:`generate_synth_coco` ``(root, **kwargs)`` unless ``root/.complete`` already
    records these arguments (:func:`rle.datasets.synthetic.store.ensure`); its paths dict."""
    return store.ensure(SYNTH_COCO, root, **kwargs)
