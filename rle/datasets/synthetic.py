"""Synthetic keypoint data written in the real COCO and Human3.6M file formats, by seed.

The real datasets cannot be downloaded here, so every loader, config and evaluation path of the
project is exercised on synthetic data that uses *exactly* their on-disk formats. Both generators
share one articulated 3-D body model (Human3.6M bone lengths in mm, joint angles sampled per
action style) drawn with cv2 as anti-aliased thick limbs, a torso polygon and a head ellipse on
cluttered textured backgrounds. Left and right limbs differ only by a slightly darker shade.

SynthCOCO (:func:`generate_synth_coco`) writes::

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
boxes in COCO pixel-edge units.
Visibility: ``v = 0`` and ``x = y = 0`` outside the image; ``v = 1`` when the pixel is covered
by an occluder, another person or a non-adjacent part of the same person (an arm behind the
torso), or for a face point turned away from the camera; ``v = 2`` otherwise.

SynthH36M (:func:`generate_synth_h36m`) renders each sampled 3-D pose from the 4 cameras of the
subject (perspective: limb thickness and shading follow depth, far parts are drawn first) and
writes both annotation layouts for the same frames::

    root/images/S1/S1_Directions_1.54138969/S1_Directions_1.54138969_000001.jpg
    root/annotation_body3d/fps50/h36m_{train,test}.npz      MMPose: imgname, center, scale, part, S
    root/annotation_body3d/cameras.pkl                      MMPose: (subject, cam_id) -> R, T, ...
    root/annotations/h36m_rle_{train,test}_protocol_2.json  official RLE: images + annotations
    root/.complete

Camera conventions: ``cameras.pkl`` has ``X_cam = (X_world - T^T) @ R`` with T in metres, the
RLE json ``X_cam = R (X_world - t)`` with t in mm, so ``R_json = R_pkl^T`` and ``t = 1000 T``.
Images are small, so ``f`` and ``c`` are rescaled to the generated size; rendering has no lens
distortion (``k = p = 0`` are written), so the pinhole projection of ``S`` equals ``part``.
Protocol 2 split: train S1, S5, S6, S7, S8; test S9, S11.

The npz arrays follow MMPose's ``preprocess_h36m``: ``imgname`` (N,) str relative to
``root/images``, ``center`` (N, 2) centre of the 2-D joints' box, ``scale`` (N,) = 1.2 x its
longer side / 200, ``part`` (N, 17, 3) pixels + visibility 1, ``S`` (N, 17, 4) camera-frame
metres + visibility 1. The RLE json has parallel lists ``images`` (id, file_name as
``imgname``, width, height, subject as an int like the official files, action_name,
action_idx = 2..16, subaction_idx, cam_idx = 1..4, frame_idx) and ``annotations`` (id,
image_id, bbox [x, y, w, h] of the drawn person, keypoints_world (17, 3) mm,
cam_param {R (3, 3), t (3,) mm, f (2,), c (2,)}); row i of the npz and the json is one image.

Everything is drawn from one ``np.random.default_rng(seed)``: the same arguments give
byte-identical json and images. :func:`ensure_synth_coco` / :func:`ensure_synth_h36m` generate
only when ``root/.complete`` is missing or records different parameters.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import pickle
import shutil
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from tqdm import tqdm

__all__ = [
    "COCO_OPTION_DEFAULTS",
    "COCO_KEYPOINTS",
    "COCO_PERSON_CATEGORY",
    "COCO_SKELETON",
    "H36M_ACTIONS",
    "H36M_CAMERA_IDS",
    "H36M_JOINTS",
    "H36M_SUBJECTS",
    "H36M_TEST_SUBJECTS",
    "H36M_TRAIN_SUBJECTS",
    "ensure_synth_coco",
    "ensure_synth_h36m",
    "generate_synth_coco",
    "generate_synth_h36m",
]

PathLike = Union[str, "os.PathLike[str]"]

COCO_KEYPOINTS = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
COCO_SKELETON = (
    (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7), (6, 8), (7, 9),
    (8, 10), (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7),
)  # fmt: skip
COCO_PERSON_CATEGORY = {
    "supercategory": "person",
    "id": 1,
    "name": "person",
    "keypoints": list(COCO_KEYPOINTS),
    "skeleton": [list(link) for link in COCO_SKELETON],
}
H36M_JOINTS = (
    "pelvis", "r_hip", "r_knee", "r_foot", "l_hip", "l_knee", "l_foot", "spine", "thorax",
    "neck_base", "head", "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist",
)  # fmt: skip
H36M_ACTIONS = (
    "Directions", "Discussion", "Eating", "Greeting", "Phoning", "Posing", "Purchases", "Sitting",
    "SittingDown", "Smoking", "Photo", "Waiting", "Walking", "WalkDog", "WalkTogether",
)  # fmt: skip
H36M_CAMERA_IDS = ("54138969", "55011271", "58860488", "60457274")
H36M_TRAIN_SUBJECTS = ("S1", "S5", "S6", "S7", "S8")
H36M_TEST_SUBJECTS = ("S9", "S11")
H36M_SUBJECTS = H36M_TRAIN_SUBJECTS + H36M_TEST_SUBJECTS

_MARKER = ".complete"
_PENDING = ".incomplete"
_OWNER = ".synthetic"  # kept for good: the folder may be cleared even without a marker
_FORMAT_VERSION = 1
_JPEG = [cv2.IMWRITE_JPEG_QUALITY, 90]
_SHIFT = 4  # cv2 fixed-point bits: sub-pixel drawing keeps labels and pixels consistent
_FP = float(1 << _SHIFT)

# ------------------------------------------------------------------------------------ body model
# Mean Human3.6M bone lengths (mm); people scale and jitter them.
_BONES = ("hip", "thigh", "shin", "spine", "chest", "neck", "head", "shoulder", "uarm", "farm")
_BONE_MM = np.array([132.0, 442.0, 454.0, 233.0, 257.0, 121.0, 115.0, 151.0, 278.0, 251.0])
_B = {name: i for i, name in enumerate(_BONES)}
# Body points: the 17 H36M joints, then head centre and the 5 COCO face points.
_HEAD_C, _NOSE, _L_EYE, _R_EYE, _L_EAR, _R_EAR = range(17, 23)
_COCO_FROM_BODY = np.array([18, 19, 20, 21, 22, 11, 14, 12, 15, 13, 16, 4, 1, 5, 2, 6, 3])
_ANKLE_MM = 90.0  # the H36M "foot" joint is the ankle, this far above the floor

_STYLES = ("stand", "walk", "sit", "sitdown", "phone", "photo", "greet", "pose")
_ACTION_STYLE = np.array(
    [_STYLES.index(s) for s in (
        "stand", "stand", "sit", "greet", "phone", "pose", "stand", "sit", "sitdown", "phone",
        "photo", "stand", "walk", "walk", "walk",
    )]
)  # fmt: skip

# Drawn parts: (part id, kind, body points, radius mm, colour key, side 0 centre/1 left/2 right).
_PARTS = (
    (1, "torso", (11, 14, 1, 4, 0, 8), 0.0, "shirt", 0),
    (2, "seg", (8, _HEAD_C), 45.0, "skin", 0),
    (3, "head", (_HEAD_C, 9, 10), 0.0, "skin", 0),
    (4, "seg", (11, 12), 48.0, "shirt", 1),
    (5, "seg", (12, 13), 36.0, "skin", 1),
    (6, "blob", (13,), 42.0, "skin", 1),
    (7, "seg", (14, 15), 48.0, "shirt", 2),
    (8, "seg", (15, 16), 36.0, "skin", 2),
    (9, "blob", (16,), 42.0, "skin", 2),
    (10, "seg", (4, 5), 70.0, "pants", 1),
    (11, "seg", (5, 6), 52.0, "pants", 1),
    (12, "blob", (6,), 50.0, "shoes", 1),
    (13, "seg", (1, 2), 70.0, "pants", 2),
    (14, "seg", (2, 3), 52.0, "pants", 2),
    (15, "blob", (3,), 50.0, "shoes", 2),
)
# Parts that may cover each COCO keypoint without hiding it (the limbs meeting at the joint).
_COCO_OWN_PARTS = (
    (3,), (3,), (3,), (3,), (3,), (1, 4), (1, 7), (4, 5), (7, 8), (5, 6), (8, 9),
    (1, 10), (1, 13), (10, 11), (13, 14), (11, 12), (14, 15),
)  # fmt: skip
_OWN_TABLE = np.zeros((17, 16), dtype=bool)
for _k, _parts in enumerate(_COCO_OWN_PARTS):
    _OWN_TABLE[_k, list(_parts)] = True
_OCCLUDER_LABEL = 255


def _rot(axis: int, angle: np.ndarray) -> np.ndarray:
    """Batched rotation matrices about a coordinate axis: (n,) radians -> (n, 3, 3)."""
    c, s = np.cos(angle), np.sin(angle)
    out = np.zeros(angle.shape + (3, 3))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    out[..., axis, axis] = 1.0
    out[..., i, i], out[..., i, j], out[..., j, i], out[..., j, j] = c, -s, s, c
    return out


def _sample_proportions(rng: np.random.Generator, n: int, spread: float) -> np.ndarray:
    """Per-person bone lengths (n, 10) in mm: global size times per-bone jitter."""
    size = np.clip(rng.normal(1.0, spread, (n, 1)), 1.0 - 3 * spread, 1.0 + 3 * spread)
    return _BONE_MM * size * rng.uniform(0.95, 1.05, (n, len(_BONES)))


def _sample_bodies(rng: np.random.Generator, styles: np.ndarray, bones: np.ndarray) -> np.ndarray:
    """Sample articulated poses.

    Args:
        rng: the generator.
        styles: (n,) indices into ``_STYLES`` (action-dependent joint-angle ranges).
        bones: (n, 10) bone lengths in mm.

    Returns:
        (n, 23, 3) points in mm in the right-handed body frame (x = the person's right,
        y = forward, z = up), pelvis at the origin: the 17 H36M joints, the head centre and
        nose, left/right eye, left/right ear.
    """
    n = len(styles)

    def uni(lo: float, hi: float, shape: Any = n) -> np.ndarray:
        return rng.uniform(lo, hi, shape)

    def gauss(mu: float, sd: float, lo: float, hi: float, shape: Any = n) -> np.ndarray:
        return np.clip(rng.normal(mu, sd, shape), lo, hi)

    # Generic standing pose (degrees); per-style overrides follow. Leg/arm rows: 0 left, 1 right.
    lean, side, twist = gauss(5, 8, -15, 40), gauss(0, 5, -15, 15), gauss(0, 12, -40, 40)
    pitch, yaw = gauss(5, 15, -40, 50), gauss(0, 30, -75, 75)
    hip_flex, hip_abd, knee = gauss(0, 12, -20, 45, (2, n)), uni(0, 15, (2, n)), uni(0, 25, (2, n))
    sh_flex, sh_abd = uni(-40, 110, (2, n)), uni(0, 80, (2, n))
    sh_rot, elbow = uni(-30, 60, (2, n)), uni(0, 120, (2, n))

    def limbs(lo: float, hi: float) -> np.ndarray:  # independent left and right angles
        return rng.uniform(lo, hi, (2, n))

    m = styles == _STYLES.index("walk")
    swing = uni(-30, 30)
    hip_flex = np.where(m, np.stack([swing, -swing]) + gauss(0, 5, -10, 10, (2, n)), hip_flex)
    knee = np.where(m, limbs(0, 50), knee)
    sh_flex = np.where(m, np.stack([-0.8 * swing, 0.8 * swing]) + limbs(-8, 8), sh_flex)
    sh_abd, elbow = np.where(m, limbs(5, 20), sh_abd), np.where(m, limbs(10, 45), elbow)
    m = styles == _STYLES.index("sit")
    hip_flex, knee = np.where(m, limbs(70, 105), hip_flex), np.where(m, limbs(60, 110), knee)
    hip_abd, lean = np.where(m, limbs(0, 25), hip_abd), np.where(m, uni(0, 35), lean)
    sh_flex, elbow = np.where(m, limbs(-10, 60), sh_flex), np.where(m, limbs(20, 120), elbow)
    m = styles == _STYLES.index("sitdown")
    hip_flex, knee = np.where(m, limbs(20, 100), hip_flex), np.where(m, limbs(20, 110), knee)
    lean = np.where(m, uni(10, 50), lean)
    m = styles == _STYLES.index("phone")  # right hand at the head
    sh_flex[1] = np.where(m, uni(10, 50), sh_flex[1])
    sh_abd[1] = np.where(m, uni(10, 45), sh_abd[1])
    sh_rot[1] = np.where(m, uni(30, 80), sh_rot[1])
    elbow[1] = np.where(m, uni(120, 150), elbow[1])
    m = styles == _STYLES.index("photo")  # both hands at the face
    sh_flex, sh_abd = np.where(m, limbs(50, 90), sh_flex), np.where(m, limbs(10, 40), sh_abd)
    elbow = np.where(m, limbs(100, 140), elbow)
    m = (styles == _STYLES.index("greet"))[None] & (np.arange(2)[:, None] == rng.integers(0, 2, n))
    sh_flex, sh_abd = np.where(m, limbs(80, 170), sh_flex), np.where(m, limbs(0, 60), sh_abd)
    elbow = np.where(m, limbs(0, 60), elbow)
    m = styles == _STYLES.index("pose")
    sh_flex, sh_abd = np.where(m, limbs(-30, 170), sh_flex), np.where(m, limbs(0, 160), sh_abd)
    hip_flex, knee = np.where(m, limbs(-20, 60), hip_flex), np.where(m, limbs(0, 60), knee)
    hip_abd = np.where(m, limbs(0, 35), hip_abd)

    rad = np.radians
    L = {name: bones[:, i, None] for name, i in _B.items()}  # (n, 1) each
    pts = np.zeros((n, 23, 3))
    # Rotation matrices' columns are the rotated frame axes: R[:, :, 2] is "up" etc.
    r_torso = _rot(0, rad(-lean)) @ _rot(1, rad(side)) @ _rot(2, rad(twist))
    pts[:, 7] = L["spine"] * r_torso[:, :, 2]
    pts[:, 8] = (L["spine"] + L["chest"]) * r_torso[:, :, 2]
    r_neck = r_torso @ _rot(0, rad(-pitch)) @ _rot(2, rad(yaw))
    x_n, y_n, z_n = r_neck[:, :, 0], r_neck[:, :, 1], r_neck[:, :, 2]
    pts[:, 9] = pts[:, 8] + L["neck"] * z_n + 15.0 * y_n
    pts[:, 10] = pts[:, 9] + L["head"] * z_n + 10.0 * y_n
    k = L["head"] / 115.0
    head_c = pts[:, 9] + k * (55.0 * z_n + 15.0 * y_n)
    pts[:, _HEAD_C] = head_c
    pts[:, _NOSE] = head_c + k * (95.0 * y_n - 20.0 * z_n)
    for s, sgn, (hip, kne, ank, sho, elb, wri, eye, ear) in (
        (0, -1.0, (4, 5, 6, 11, 12, 13, _L_EYE, _L_EAR)),
        (1, 1.0, (1, 2, 3, 14, 15, 16, _R_EYE, _R_EAR)),
    ):
        pts[:, eye] = head_c + k * (sgn * 32.0 * x_n + 80.0 * y_n + 15.0 * z_n)
        pts[:, ear] = head_c + k * (sgn * 75.0 * x_n - 5.0 * y_n)
        pts[:, hip, 0] = sgn * L["hip"][:, 0]
        r_thigh = _rot(0, rad(hip_flex[s])) @ _rot(1, rad(-sgn * hip_abd[s]))
        pts[:, kne] = pts[:, hip] - L["thigh"] * r_thigh[:, :, 2]
        r_shin = r_thigh @ _rot(0, rad(-knee[s]))
        pts[:, ank] = pts[:, kne] - L["shin"] * r_shin[:, :, 2]
        pts[:, sho] = pts[:, 8] + sgn * L["shoulder"] * r_torso[:, :, 0] - 20.0 * r_torso[:, :, 2]
        r_uarm = r_torso @ _rot(0, rad(sh_flex[s])) @ _rot(1, rad(-sgn * sh_abd[s]))
        pts[:, elb] = pts[:, sho] - L["uarm"] * r_uarm[:, :, 2]
        r_farm = r_uarm @ _rot(2, rad(sgn * sh_rot[s])) @ _rot(0, rad(elbow[s]))
        pts[:, wri] = pts[:, elb] - L["farm"] * r_farm[:, :, 2]
    return pts


def _body_height(bones: np.ndarray) -> np.ndarray:
    """Standing height (n,) in mm from bone lengths (n, 10): ankle to the top of the head."""
    b = _B
    chain = ["thigh", "shin", "spine", "chest", "neck", "head"]
    return bones[:, [b[c] for c in chain]].sum(1) + _ANKLE_MM + 60.0


# ------------------------------------------------------------------------------------- drawing
def _colour(rng: np.random.Generator, lo: float, hi: float) -> np.ndarray:
    return rng.uniform(lo, hi, 3)


def _person_colours(rng: np.random.Generator) -> Dict[str, np.ndarray]:
    """Clothing and skin colours (BGR floats) of one person."""
    tones = np.array([[80, 110, 160], [60, 85, 130], [130, 160, 215], [40, 55, 85], [95, 140, 190]])
    skin = tones[rng.integers(0, len(tones))] + rng.normal(0, 8, 3)
    return {
        "shirt": _colour(rng, 15, 240),
        "pants": _colour(rng, 15, 200),
        "skin": skin,
        "shoes": _colour(rng, 10, 80),
        "hair": _colour(rng, 5, 90),
    }


def _fp(p: np.ndarray) -> Tuple[int, int]:
    return int(round(p[0] * _FP)), int(round(p[1] * _FP))


def _bgr(c: np.ndarray) -> Tuple[float, float, float]:
    c = np.clip(c, 0, 255)
    return float(c[0]), float(c[1]), float(c[2])


def _draw_shape(
    targets: Sequence[Tuple[np.ndarray, Any, float, int]], kind: str, geo: Dict[str, Any]
) -> None:
    """Draw one primitive into several targets: (array, colour, thickness scale, line type)."""
    for dst, col, tscale, lt in targets:
        if kind == "seg":
            t = max(1, int(round(geo["thick"] * tscale)))
            cv2.line(dst, geo["p"], geo["q"], col, t, lt, _SHIFT)
        elif kind == "blob":
            r = max(1, int(round(geo["r"] * tscale)))
            cv2.circle(dst, geo["p"], r, col, -1, lt, _SHIFT)
        elif kind == "poly":
            cv2.fillConvexPoly(dst, geo["pts"], col, lt, _SHIFT)
        elif kind == "ellipse":
            axes = (max(1, int(geo["axes"][0] * tscale)), max(1, int(geo["axes"][1] * tscale)))
            cv2.ellipse(dst, geo["p"], axes, geo["angle"], 0, 360, col, -1, lt, _SHIFT)


def _render_body(
    img: np.ndarray,
    uv: np.ndarray,
    px_mm: np.ndarray,
    depth: np.ndarray,
    colours: Dict[str, np.ndarray],
    shade_ref: float,
    shade_gain: float,
    label: Optional[np.ndarray] = None,
    label_base: int = 0,
    mask: Optional[np.ndarray] = None,
) -> None:
    """Draw one person in painter's order (far parts first).

    Args:
        img: (H, W, 3) uint8 BGR image, drawn in place with anti-aliasing.
        uv: (23, 2) body points in image index units.
        px_mm: (23,) pixels per mm at each point (limb thickness follows depth).
        depth: (23,) depth of each point along the viewing axis (larger = farther).
        colours: the person's colours from :func:`_person_colours`.
        shade_ref, shade_gain: parts at depth ``d`` are lit by
            ``1 + shade_gain * (shade_ref - d) / shade_ref`` (nearer = brighter).
        label: optional (H, W) uint8 map receiving ``label_base + part id`` (no anti-aliasing).
        mask: optional (H, W) uint8 silhouette of this person (set to 1).
    """
    order = sorted(_PARTS, key=lambda part: -float(depth[list(part[2])].mean()))
    for pid, kind, idx, radius, key, side in order:
        d = float(depth[list(idx)].mean())
        light = float(np.clip(1.0 + shade_gain * (shade_ref - d) / shade_ref, 0.55, 1.25))
        base = colours[key] * light * (0.88 if side == 2 else 1.0)
        # (primitive, geometry, colour, cylinder shading)
        geo_list: List[Tuple[str, Dict[str, Any], Optional[np.ndarray], bool]] = []
        scale = float(px_mm[list(idx)].mean())
        if kind == "seg":
            geo = {"p": _fp(uv[idx[0]]), "q": _fp(uv[idx[1]]), "thick": 2 * radius * scale}
            geo_list.append(("seg", geo, base, True))
        elif kind == "blob":
            geo_list.append(("blob", {"p": _fp(uv[idx[0]]), "r": radius * scale * _FP}, base, True))
        elif kind == "torso":
            quad = np.round(uv[list(idx[:4])] * _FP).astype(np.int32)
            geo_list.append(("poly", {"pts": cv2.convexHull(quad)}, base, False))
            # thick spine and girdles keep the torso solid when seen edge-on
            pants = colours["pants"] * light
            for a, b, r, col in ((0, 8, 95.0, base), (11, 14, 55.0, base), (1, 4, 70.0, pants)):
                geo = {"p": _fp(uv[a]), "q": _fp(uv[b]), "thick": 2 * r * scale}
                geo_list.append(("seg", geo, col, a != 1))
        else:  # head: hair behind / face in front, whichever side faces the camera
            centre, neck, top = uv[_HEAD_C], uv[9], uv[10]
            up = top - neck
            angle = math.degrees(math.atan2(up[0], -up[1])) if np.hypot(*up) > 1e-6 else 0.0
            axes = (90.0 * scale * _FP, 112.0 * scale * _FP)
            to_nose = uv[_NOSE] - centre
            facing = depth[_NOSE] < depth[_HEAD_C]
            face = {"p": _fp(centre + 0.25 * to_nose), "axes": axes, "angle": angle}
            hair = {"p": _fp(centre - 0.2 * to_nose - 0.1 * up), "axes": axes, "angle": angle}
            skin, hair_col = colours["skin"] * light, colours["hair"] * light
            if facing:
                geo_list += [("ellipse", hair, hair_col, False), ("ellipse", face, skin, False)]
                # faint eyes and nose: the front/back cue a real face gives
                for j, r, dim in ((_L_EYE, 9.0, 0.35), (_R_EYE, 9.0, 0.35), (_NOSE, 11.0, 0.8)):
                    geo = {"p": _fp(uv[j]), "r": r * scale * _FP}
                    geo_list.append(("blob", geo, skin * dim, False))
            else:
                geo_list += [("ellipse", face, skin, False), ("ellipse", hair, hair_col, False)]
        for shape, geo, col, cylinder in geo_list:
            targets: List[Tuple[np.ndarray, Any, float, int]] = []
            if cylinder:  # a lighter core on a darker rim reads as a rounded limb
                targets.append((img, _bgr(col * 0.75), 1.0, cv2.LINE_AA))
                targets.append((img, _bgr(col * 1.05), 0.55, cv2.LINE_AA))
            else:
                targets.append((img, _bgr(col), 1.0, cv2.LINE_AA))
            if label is not None:
                targets.append((label, label_base + pid, 1.0, cv2.LINE_8))
            if mask is not None:
                targets.append((mask, 1, 1.0, cv2.LINE_8))
            _draw_shape(targets, shape, geo)


def _random_shape(
    rng: np.random.Generator,
    targets: Sequence[Tuple[np.ndarray, Any]],
    centre: np.ndarray,
    size: float,
    filled: bool = True,
) -> None:
    """A random rectangle, ellipse, convex polygon or thick line drawn into every target."""
    kind = int(rng.integers(0, 4))
    angle = float(rng.uniform(0, 180))
    w, h = size * rng.uniform(0.3, 1.0, 2)
    thick = -1 if filled else int(rng.integers(1, 4))
    if kind == 0:
        box = cv2.boxPoints(((float(centre[0]), float(centre[1])), (float(w), float(h)), angle))
        pts = np.round(box * _FP).astype(np.int32)
    elif kind == 2:
        pts = np.round((centre + rng.normal(0, size / 3, (6, 2))) * _FP).astype(np.int32)
        pts = cv2.convexHull(pts)
    for dst, col in targets:
        lt = cv2.LINE_AA if dst.ndim == 3 else cv2.LINE_8
        if kind == 1:
            axes = (max(1, int(w * _FP / 2)), max(1, int(h * _FP / 2)))
            cv2.ellipse(dst, _fp(centre), axes, angle, 0, 360, col, thick, lt, _SHIFT)
        elif kind == 3:
            d = np.array([math.cos(math.radians(angle)), math.sin(math.radians(angle))]) * w
            t = max(1, int(h / 4))
            cv2.line(dst, _fp(centre - d), _fp(centre + d), col, t, lt, _SHIFT)
        elif filled:
            cv2.fillConvexPoly(dst, pts, col, lt, _SHIFT)
        else:
            cv2.polylines(dst, [pts], True, col, thick, lt, _SHIFT)


def _textured_background(
    rng: np.random.Generator, width: int, height: int, clutter: float = 1.0
) -> np.ndarray:
    """Cluttered background: coloured blotches, a gradient, fine texture and random shapes
    (6-17 of them, times ``clutter``)."""
    gh, gw = rng.integers(2, 8, 2)
    img = cv2.resize(
        rng.uniform(0, 255, (gh, gw, 3)).astype(np.float32), (width, height), cv2.INTER_CUBIC
    )
    ang = rng.uniform(0, 2 * np.pi)
    ramp = np.arange(width)[None] * math.cos(ang) + np.arange(height)[:, None] * math.sin(ang)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1.0) - 0.5
    img += ramp[..., None].astype(np.float32) * rng.uniform(-90, 90, 3).astype(np.float32)
    tex = rng.uniform(-1, 1, (height // 3 + 1, width // 3 + 1, 1)).astype(np.float32)
    tex = cv2.resize(tex, (width, height), interpolation=cv2.INTER_LINEAR)
    img += tex[..., None] * float(rng.uniform(5, 30))
    img = np.clip(img, 0, 255).astype(np.uint8)
    diag = math.hypot(width, height)
    for _ in range(int(round(clutter * int(rng.integers(6, 18))))):
        centre = rng.uniform(0, 1, 2) * (width, height)
        col = _bgr(_colour(rng, 0, 255))
        _random_shape(rng, [(img, col)], centre, diag * rng.uniform(0.05, 0.35), rng.random() < 0.7)
    # Photos are far less saturated than uniform random colours.
    grey = cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    alpha = float(rng.uniform(0.2, 0.6))
    return cv2.addWeighted(img, 1.0 - alpha, grey, alpha, 0.0)


def _add_grain(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Sensor noise and occasional defocus, so edges are not perfectly clean."""
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (3, 3), 0)
    noise = rng.normal(0, rng.uniform(2, 7), img.shape).astype(np.float32)
    return np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------ argument checks
def _check_root(root: Any) -> Path:
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a str or path, got {type(root).__name__}")
    return Path(root)


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_size(image_size: Any) -> Tuple[int, int]:
    try:
        w, h = image_size
    except (TypeError, ValueError):
        raise ValueError(f"image_size must be (width, height), got {image_size!r}") from None
    for v in (w, h):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"image_size must hold ints, got {image_size!r}")
        if v < 32:
            raise ValueError(f"image_size sides must be >= 32 pixels, got {image_size!r}")
    return int(w), int(h)


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return int(seed)


# ------------------------------------------------------------------------------ output folders
def _start(root: Path, params: Dict[str, Any], subdirs: Sequence[str]) -> None:
    """Clear a previous synthetic generation in ``root`` and mark this one as pending.

    Only folders this module wrote before are cleared, so pointing a generator at a real
    dataset by mistake fails instead of deleting it.
    """
    ours = any((root / name).exists() for name in (_MARKER, _PENDING, _OWNER))
    for sub in subdirs:
        path = root / sub
        if path.exists():
            if not ours and any(path.iterdir()):
                raise FileExistsError(
                    f"root {root} already holds {sub}/ not written by the synthetic generator"
                )
            shutil.rmtree(path)
    root.mkdir(parents=True, exist_ok=True)
    (root / _OWNER).write_text(params["generator"] + "\n")
    (root / _MARKER).unlink(missing_ok=True)
    (root / _PENDING).write_text(json.dumps(params, sort_keys=True))


def _finish(root: Path, params: Dict[str, Any]) -> None:
    (root / _MARKER).write_text(json.dumps(params, sort_keys=True, indent=1) + "\n")
    (root / _PENDING).unlink(missing_ok=True)


def _marker_matches(root: Path, params: Dict[str, Any]) -> bool:
    try:
        return json.loads((root / _MARKER).read_text()) == json.loads(json.dumps(params))
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def _exclusive(root: Path):
    """Hold an exclusive lock on ``root``'s sibling ``.NAME.lock`` file, so that processes
    started together (``tools/compare.py --jobs``) generate a set once and the others wait
    and then find it complete. No-op where ``fcntl`` is missing (Windows)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _dump_json(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, separators=(",", ":"))


# ----------------------------------------------------------------------------------- SynthCOCO
#: the difficulty options of :func:`generate_synth_coco` and their defaults
COCO_OPTION_DEFAULTS: Dict[str, Any] = {
    "person_height": [0.35, 0.95],
    "max_people": 3,
    "clutter": 1.0,
    "max_yaw": 180.0,
    "roll": 1.0,
}


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


def _check_number(value: Any, name: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not lo <= value <= hi or not math.isfinite(value):
        raise ValueError(f"{name} must be in [{lo:g}, {hi:g}], got {value!r}")
    return float(value)


def _coco_params(
    num_train_images: Any,
    num_val_images: Any,
    image_size: Any,
    seed: Any,
    person_height: Any = (0.35, 0.95),
    max_people: Any = 3,
    clutter: Any = 1.0,
    max_yaw: Any = 180.0,
    roll: Any = 1.0,
) -> Dict[str, Any]:
    params = {
        "generator": "synth_coco",
        "version": _FORMAT_VERSION,
        "num_train_images": _check_int(num_train_images, "num_train_images", 1),
        "num_val_images": _check_int(num_val_images, "num_val_images", 1),
        "image_size": list(_check_size(image_size)),
        "seed": _check_seed(seed),
    }
    extra = {
        "person_height": _check_person_height(person_height),
        "max_people": _check_int(max_people, "max_people", 1),
        "clutter": _check_number(clutter, "clutter", 0, 4),
        "max_yaw": _check_number(max_yaw, "max_yaw", 0, 180),
        "roll": _check_number(roll, "roll", 0, 1),
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
    person_height: Sequence[float] = (0.35, 0.95),
    max_people: int = 3,
    clutter: float = 1.0,
    max_yaw: float = 180.0,
    roll: float = 1.0,
) -> Tuple[np.ndarray, List[Dict[str, Any]]]:
    """Render one image with 1 to ``max_people`` people; return it and their COCO annotation
    fields. ``person_height``: standing height range as a fraction of the image height;
    ``clutter``: scales the number of background shapes and occluders; ``max_yaw``: largest
    angle (degrees) between the direction a person faces and the direction to the camera;
    ``roll``: scales the in-plane rotation."""
    n = int(rng.integers(1, max_people + 1))
    bones = _sample_proportions(rng, n, 0.06)
    body = _sample_bodies(rng, _ACTION_STYLE[rng.integers(0, len(H36M_ACTIONS), n)], bones)
    # Camera: person yaw, camera elevation, mild perspective, in-plane roll, scale, position.
    if max_yaw >= 180.0:
        yaw = rng.uniform(0, 2 * np.pi, n)
    else:  # yaw = pi faces the camera
        yaw = np.pi + np.radians(rng.uniform(-max_yaw, max_yaw, n))
    elev = np.radians(_gauss_clip(rng, 10, 10, -20, 45, n))
    to_cam = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])  # (x, y, z-up) -> (x, y-down, depth)
    rot = _rot(0, elev) @ to_cam @ _rot(2, yaw)
    cam = np.einsum("nij,nkj->nki", rot, body)  # (n, 23, 3) mm, pelvis at 0
    dist = rng.uniform(2500, 9000, (n, 1))
    persp = dist / (dist + cam[:, :, 2])
    angle = np.radians(np.where(rng.random(n) < 0.04, rng.uniform(-180, 180, n), 0.0))
    angle = (angle + np.radians(_gauss_clip(rng, 0, 10, -40, 40, n))) * roll
    c, s = np.cos(angle)[:, None], np.sin(angle)[:, None]
    x, y = cam[:, :, 0] * persp, cam[:, :, 1] * persp
    # pixels per mm at the pelvis
    px = rng.uniform(person_height[0], person_height[1], n) * height / _body_height(bones)
    centre = rng.uniform((0.08 * width, 0.3 * height), (0.92 * width, 0.78 * height), (n, 2))
    uv = np.stack([c * x - s * y, s * x + c * y], -1) * px[:, None, None] + centre[:, None]
    px_mm = px[:, None] * persp
    depth = dist + cam[:, :, 2]

    img = _textured_background(rng, width, height, clutter)
    label = np.zeros((height, width), np.uint8)
    masks = np.zeros((n, height, width), np.uint8)
    order = np.argsort(px, kind="stable")  # nearer (larger) people are drawn last
    for rank, i in enumerate(order):
        _render_body(
            img, uv[i], px_mm[i], depth[i], _person_colours(rng), float(dist[i, 0]), 1.5,
            label=label, label_base=16 * rank, mask=masks[i],
        )  # fmt: skip
    for _ in range(int(round(clutter * int(rng.choice([0, 0, 1, 1, 2]))))):
        i = int(rng.integers(0, n))
        size = float(px[i] * _body_height(bones[i : i + 1])[0] * rng.uniform(0.12, 0.35))
        at = uv[i, _COCO_FROM_BODY[rng.integers(0, 17)]] + rng.normal(0, 0.3 * size, 2)
        col = _bgr(_colour(rng, 0, 255))
        _random_shape(rng, [(img, col), (label, _OCCLUDER_LABEL)], at, size)
    img = _add_grain(rng, img)

    anns = []
    rank_of = np.empty(n, int)
    rank_of[order] = np.arange(n)
    for i in range(n):
        kp = np.round(uv[i, _COCO_FROM_BODY], 2)
        inside = (kp[:, 0] >= 0) & (kp[:, 0] <= width - 1) & (kp[:, 1] >= 0)
        inside &= kp[:, 1] <= height - 1
        ix = np.clip(np.round(kp[:, 0]).astype(int), 0, width - 1)
        iy = np.clip(np.round(kp[:, 1]).astype(int), 0, height - 1)
        lab = label[iy, ix].astype(int)
        own = (lab // 16 == rank_of[i]) & _OWN_TABLE[np.arange(17), lab % 16]
        hidden = (lab != 0) & ~own
        # face points turned away from the camera are labelled but not visible
        normal = cam[i, _COCO_FROM_BODY[:5]] - cam[i, _HEAD_C]
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
        root: output folder; a previous synthetic generation in it is replaced.
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
    root = _check_root(root)
    params = _coco_params(
        num_train_images, num_val_images, image_size, seed, person_height, max_people, clutter,
        max_yaw, roll,
    )  # fmt: skip
    look = {k: params.get(k, v) for k, v in COCO_OPTION_DEFAULTS.items()}
    width, height = params["image_size"]
    paths = _coco_paths(root)
    _start(root, params, ("images", "annotations"))
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
            cv2.imwrite(str(folder / file_name), img, _JPEG)
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
        _dump_json(coco, paths[f"{split}_json"])
    bar.close()
    _dump_json(detections, paths["val_detections"])
    _finish(root, params)
    return paths


def ensure_synth_coco(root: PathLike, **kwargs: Any) -> Dict[str, Path]:
    """Generate SynthCOCO in ``root`` unless ``root/.complete`` records the same parameters.

    Args:
        root: dataset folder.
        **kwargs: arguments of :func:`generate_synth_coco` (defaults as there).

    Returns:
        The paths dict of :func:`generate_synth_coco`.
    """
    root = _check_root(root)
    kw = {"num_train_images": 2000, "num_val_images": 500, "image_size": (256, 192), "seed": 0}
    kw.update(COCO_OPTION_DEFAULTS)
    unknown = set(kwargs) - set(kw) - {"progress"}
    if unknown:
        raise TypeError(f"ensure_synth_coco got unexpected arguments {sorted(unknown)}")
    kw.update(kwargs)
    progress = kw.pop("progress", True)
    with _exclusive(root):
        if _marker_matches(root, _coco_params(**kw)):
            return _coco_paths(root)
        return generate_synth_coco(root, progress=progress, **kw)


# ----------------------------------------------------------------------------------- SynthH36M
def _h36m_params(
    subjects: Any, frames_per_subject: Any, image_size: Any, seed: Any, cameras_pkl: Any
) -> Dict[str, Any]:
    if isinstance(subjects, str) or not isinstance(subjects, (list, tuple)):
        raise TypeError(f"subjects must be a list or tuple of names, got {subjects!r}")
    if not subjects:
        raise ValueError("subjects must not be empty")
    bad = [s for s in subjects if s not in H36M_SUBJECTS]
    if bad or len(set(subjects)) != len(subjects):
        raise ValueError(f"subjects must be distinct names from {H36M_SUBJECTS}, got {subjects!r}")
    if cameras_pkl is not None:
        if not isinstance(cameras_pkl, (str, os.PathLike)):
            raise TypeError(f"cameras_pkl must be a path or None, got {cameras_pkl!r}")
        if not Path(cameras_pkl).is_file():
            raise ValueError(f"cameras_pkl {cameras_pkl} is not a file")
        cameras_pkl = str(Path(cameras_pkl).resolve())
    return {
        "generator": "synth_h36m",
        "version": _FORMAT_VERSION,
        "subjects": sorted(subjects, key=H36M_SUBJECTS.index),
        "frames_per_subject": _check_int(frames_per_subject, "frames_per_subject", 1),
        "image_size": list(_check_size(image_size)),
        "seed": _check_seed(seed),
        "cameras_pkl": cameras_pkl,
    }


def _h36m_paths(root: Path) -> Dict[str, Path]:
    body3d, ann = root / "annotation_body3d", root / "annotations"
    return {
        "root": root,
        "images": root / "images",
        "train_npz": body3d / "fps50" / "h36m_train.npz",
        "test_npz": body3d / "fps50" / "h36m_test.npz",
        "cameras": body3d / "cameras.pkl",
        "train_json": ann / "h36m_rle_train_protocol_2.json",
        "test_json": ann / "h36m_rle_test_protocol_2.json",
    }


def _look_at(centre: np.ndarray, target: np.ndarray, roll: float) -> np.ndarray:
    """cameras.pkl rotation (columns = camera x right, y down, z forward in world coords)."""
    z = (target - centre) / np.linalg.norm(target - centre)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    c, s = math.cos(roll), math.sin(roll)
    return np.stack([c * x + s * y, -s * x + c * y, z], axis=1)


def _builtin_cameras(
    rng: np.random.Generator, subjects: Sequence[str]
) -> Dict[Tuple[str, str], Dict[str, Any]]:
    """Four studio cameras per subject laid out like Human3.6M's, at 1000 x 1002 pixels."""
    rig = np.array([[1.9, 4.9], [1.9, -5.0], [-1.7, 5.2], [-1.7, -3.8]])  # centres (m) on floor
    cams = {}
    for subject in subjects:
        for i, cam_id in enumerate(H36M_CAMERA_IDS):
            centre = np.append(rig[i] + rng.normal(0, 0.1, 2), rng.uniform(1.45, 1.65))
            target = np.array([0.0, 0.0, 0.9]) + rng.normal(0, 0.1, 3)
            cams[(subject, cam_id)] = {
                "R": _look_at(centre, target, float(np.radians(rng.normal(0, 1.0)))),
                "T": centre.reshape(3, 1),
                "c": (np.array([512.0, 510.0]) + rng.normal(0, 4, 2)).reshape(2, 1),
                "f": (1146.0 + rng.normal(0, 3) + rng.normal(0, 1, 2)).reshape(2, 1),
                "k": np.zeros((3, 1)),
                "p": np.zeros((2, 1)),
                "w": 1000,
                "h": 1002,
                "name": f"camera{i + 1}",
                "id": cam_id,
            }
    return cams


def _scaled_cameras(
    cams: Dict[Tuple[str, str], Dict[str, Any]], subjects: Sequence[str], width: int, height: int
) -> Dict[Tuple[str, str], Dict[str, Any]]:
    """Rescale intrinsics to the generated image size; zero the distortion (none is rendered)."""
    out = {}
    for subject in subjects:
        ids = sorted(cid for (s, cid) in cams if s == subject)
        if not ids:
            raise ValueError(f"cameras_pkl has no cameras for subject {subject}")
        for cid in ids:
            cam = cams[(subject, cid)]
            sxy = np.array([[width / cam["w"]], [height / cam["h"]]])
            out[(subject, cid)] = {
                "R": np.asarray(cam["R"], np.float64).copy(),
                "T": np.asarray(cam["T"], np.float64).reshape(3, 1).copy(),
                # index-unit pixel centres: edge 0 and edge w map to edges 0 and width
                "c": (np.asarray(cam["c"], np.float64).reshape(2, 1) + 0.5) * sxy - 0.5,
                "f": np.asarray(cam["f"], np.float64).reshape(2, 1) * sxy,
                "k": np.zeros((3, 1)),
                "p": np.zeros((2, 1)),
                "w": width,
                "h": height,
                "name": str(cam.get("name", f"camera{len(out) % 4 + 1}")),
                "id": cid,
            }
    return out


def _project(world_mm: np.ndarray, cam: Dict[str, Any]) -> Tuple[np.ndarray, np.ndarray]:
    """World points (..., 3) mm -> camera-frame mm (..., 3) and pixels (..., 2), no distortion."""
    xc = (world_mm - cam["T"].ravel() * 1000.0) @ cam["R"]
    uv = xc[..., :2] / xc[..., 2:3] * cam["f"].ravel() + cam["c"].ravel()
    return xc, uv


def _place_in_view(
    rng: np.random.Generator, body: np.ndarray, cams: Sequence[Dict[str, Any]]
) -> np.ndarray:
    """Yaw, floor and position (n, 23, 3) body-frame poses so every camera sees them whole."""
    n = len(body)
    world = np.einsum("nij,nkj->nki", _rot(2, rng.uniform(0, 2 * np.pi, n)), body)
    world[:, :, 2] += _ANKLE_MM - world[:, [3, 6], 2].min(1, keepdims=True)
    offset = np.zeros((n, 2))
    todo = np.ones(n, bool)
    for _ in range(40):
        m = int(todo.sum())
        if m == 0:
            break
        r, th = 1300.0 * np.sqrt(rng.random(m)), rng.uniform(0, 2 * np.pi, m)
        offset[todo] = np.stack([r * np.cos(th), r * np.sin(th)], -1)
        ok = np.ones(n, bool)
        for cam in cams:
            pts = world.copy()
            pts[:, :, :2] += offset[:, None]
            xc, uv = _project(pts, cam)
            margin = 0.04 * np.array([cam["w"], cam["h"]])
            ok &= (xc[..., 2] > 1000).all(1)
            ok &= ((uv >= margin) & (uv <= np.array([cam["w"], cam["h"]]) - 1 - margin)).all((1, 2))
        todo &= ~ok
    offset[todo] = 0.0  # the studio centre is in every camera's view
    world[:, :, :2] += offset[:, None]
    return np.round(world, 3)


def _room_background(
    rng: np.random.Generator, cam: Dict[str, Any], width: int, height: int
) -> np.ndarray:
    """Static studio view of one camera: textured walls and a projected floor with a grid."""
    img = _textured_background(rng, width, height)
    g = np.linspace(-5000.0, 5000.0, 21)
    grid = np.stack(np.meshgrid(g, g, indexing="ij"), -1)
    floor = np.concatenate([grid, np.zeros(grid.shape[:2] + (1,))], -1)
    xc, uv = _project(floor, cam)
    front = xc[..., 2] > 300
    if front.sum() >= 3:
        hull = cv2.convexHull(np.round(uv[front] * _FP).astype(np.int32))
        cv2.fillConvexPoly(img, hull, _bgr(_colour(rng, 60, 170)), cv2.LINE_AA, _SHIFT)
        line_col = _bgr(_colour(rng, 30, 220))
        for di, dj in ((0, 1), (1, 0)):
            for i in range(21 - di):
                for j in range(21 - dj):
                    p, q = (i, j), (i + di, j + dj)
                    if front[p] and front[q] and np.abs(uv[p] - uv[q]).max() < 4 * width:
                        cv2.line(img, _fp(uv[p]), _fp(uv[q]), line_col, 1, cv2.LINE_AA, _SHIFT)
    return img


def _h36m_frame_image(
    rng: np.random.Generator,
    background: np.ndarray,
    world: np.ndarray,
    cam: Dict[str, Any],
    colours: Dict[str, np.ndarray],
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, List[float]]:
    """Render one view: returns the image, camera-frame mm (23, 3), pixels (23, 2), bbox."""
    width, height = cam["w"], cam["h"]
    img = cv2.convertScaleAbs(background, alpha=rng.uniform(0.9, 1.1), beta=rng.uniform(-10, 10))
    ring = np.radians(np.arange(0, 360, 20))
    shadow = np.zeros((len(ring), 3))
    shadow[:, 0] = world[0, 0] + 380 * np.cos(ring)
    shadow[:, 1] = world[0, 1] + 380 * np.sin(ring)
    sxc, suv = _project(shadow, cam)
    if (sxc[:, 2] > 300).all():  # a soft contact shadow anchors the person on the floor
        dark = img.copy()
        hull = cv2.convexHull(np.round(suv * _FP).astype(np.int32))
        cv2.fillConvexPoly(dark, hull, (20, 20, 20), cv2.LINE_AA, _SHIFT)
        img = cv2.addWeighted(img, 0.65, dark, 0.35, 0)
    xc, uv = _project(world, cam)
    mask = np.zeros((height, width), np.uint8)
    px_mm = float(cam["f"].mean()) / xc[:, 2]
    _render_body(img, uv, px_mm, xc[:, 2], colours, 5000.0, 1.0, mask=mask)
    x0, y0, bw, bh = cv2.boundingRect(mask)
    return _add_grain(rng, img), xc, uv, [float(x0), float(y0), float(bw), float(bh)]


def generate_synth_h36m(
    root: PathLike,
    subjects: Sequence[str] = H36M_SUBJECTS,
    frames_per_subject: int = 200,
    image_size: Tuple[int, int] = (256, 256),
    seed: int = 0,
    cameras_pkl: Optional[PathLike] = None,
    progress: bool = True,
) -> Dict[str, Path]:
    """Generate SynthH36M in the MMPose and the official RLE layouts (see module docstring).

    Each frame is one pose of the subject seen by its 4 cameras (4 images, as in Human3.6M).
    Frame ``i`` of a subject belongs to action ``H36M_ACTIONS[i % 15]``, sub-action
    ``(i // 15) % 2 + 1``; the action selects the joint-angle ranges (sitting, walking, ...).
    Each subject has its own body proportions and clothes.

    Args:
        root: output folder; a previous synthetic generation in it is replaced.
        subjects: subject names from ``H36M_SUBJECTS``; S1, S5-S8 go to the train files and
            S9, S11 to the test files (either may be empty).
        frames_per_subject: poses per subject (>= 1); images = 4 x frames x subjects.
        image_size: (width, height) in pixels, each >= 32; intrinsics are rescaled to it.
        seed: seed of the single ``np.random.default_rng`` driving everything.
        cameras_pkl: an MMPose ``cameras.pkl`` whose R and T (and rescaled f, c) are used;
            None builds 4 Human3.6M-like cameras per subject.
        progress: show a tqdm progress bar.

    Returns:
        Paths: ``root``, ``images``, ``train_npz``, ``test_npz``, ``cameras`` (MMPose layout),
        ``train_json``, ``test_json`` (official RLE layout).

    Raises:
        TypeError, ValueError: an invalid argument (the message names it).
        FileExistsError: ``root`` holds data folders not written by this module.
    """
    root = _check_root(root)
    params = _h36m_params(subjects, frames_per_subject, image_size, seed, cameras_pkl)
    subjects, n_frames = params["subjects"], params["frames_per_subject"]
    width, height = params["image_size"]
    if params["cameras_pkl"] is not None:
        with open(params["cameras_pkl"], "rb") as f:
            source = pickle.load(f)
    paths = _h36m_paths(root)
    rng = np.random.default_rng(params["seed"])
    if params["cameras_pkl"] is None:
        source = _builtin_cameras(rng, subjects)
    cams = _scaled_cameras(source, subjects, width, height)
    _start(root, params, ("images", "annotation_body3d", "annotations"))

    splits: Dict[str, Dict[str, list]] = {
        split: {k: [] for k in ("imgname", "center", "scale", "part", "S", "images", "anns")}
        for split in ("train", "test")
    }
    image_id = 0
    bar = tqdm(total=len(subjects) * n_frames * 4, desc="SynthH36M", unit="img",
               disable=not progress)  # fmt: skip
    for subject in subjects:
        split = splits["train" if subject in H36M_TRAIN_SUBJECTS else "test"]
        cam_ids = sorted(cid for (s, cid) in cams if s == subject)
        subject_cams = [cams[(subject, cid)] for cid in cam_ids]
        bones = _sample_proportions(rng, 1, 0.05).repeat(n_frames, 0)
        colours = _person_colours(rng)
        backgrounds = [_room_background(rng, cam, width, height) for cam in subject_cams]
        actions = np.arange(n_frames) % len(H36M_ACTIONS)
        body = _sample_bodies(rng, _ACTION_STYLE[actions], bones)
        world = _place_in_view(rng, body, subject_cams)
        for i in range(n_frames):
            action, sub = H36M_ACTIONS[actions[i]], (i // len(H36M_ACTIONS)) % 2 + 1
            frame = i // (2 * len(H36M_ACTIONS)) + 1
            for ci, (cid, cam) in enumerate(zip(cam_ids, subject_cams)):
                seq = f"{subject}_{action}_{sub}.{cid}"
                name = f"{subject}/{seq}/{seq}_{frame:06d}.jpg"
                img, xc, uv, bbox = _h36m_frame_image(rng, backgrounds[ci], world[i], cam, colours)
                out = paths["images"] / name
                out.parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(out), img, _JPEG)
                kp = uv[:17]
                lo, hi = kp.min(0), kp.max(0)
                ones = np.ones((17, 1))
                split["imgname"].append(name)
                split["center"].append((lo + hi) / 2)
                split["scale"].append(float((hi - lo).max()) * 1.2 / 200.0)  # MMPose: 1.2 pad
                split["part"].append(np.concatenate([kp, ones], 1))
                split["S"].append(np.concatenate([xc[:17] / 1000.0, ones], 1))
                image_id += 1
                split["images"].append(
                    {
                        "id": image_id, "file_name": name, "width": width, "height": height,
                        "subject": int(subject[1:]), "action_name": action,
                        "action_idx": int(actions[i]) + 2, "subaction_idx": sub,
                        "cam_idx": ci + 1, "frame_idx": int(frame - 1),
                    }
                )  # fmt: skip
                split["anns"].append(
                    {
                        "id": image_id,
                        "image_id": image_id,
                        "bbox": bbox,
                        "keypoints_world": world[i, :17].tolist(),
                        "cam_param": {
                            "R": cam["R"].T.tolist(),
                            "t": (cam["T"].ravel() * 1000.0).tolist(),
                            "f": cam["f"].ravel().tolist(),
                            "c": cam["c"].ravel().tolist(),
                        },
                    }
                )
                bar.update(1)
    bar.close()

    for name in ("train", "test"):
        s = splits[name]
        n = len(s["imgname"])
        paths[f"{name}_npz"].parent.mkdir(parents=True, exist_ok=True)
        np.savez(
            paths[f"{name}_npz"],
            imgname=np.array(s["imgname"], dtype=str) if n else np.zeros(0, "<U1"),
            center=np.array(s["center"], np.float64).reshape(n, 2),
            scale=np.array(s["scale"], np.float64).reshape(n),
            part=np.array(s["part"], np.float64).reshape(n, 17, 3),
            S=np.array(s["S"], np.float64).reshape(n, 17, 4),
        )
        _dump_json({"images": s["images"], "annotations": s["anns"]}, paths[f"{name}_json"])
    with open(paths["cameras"], "wb") as f:
        pickle.dump(cams, f, protocol=4)
    _finish(root, params)
    return paths


def ensure_synth_h36m(root: PathLike, **kwargs: Any) -> Dict[str, Path]:
    """Generate SynthH36M in ``root`` unless ``root/.complete`` records the same parameters.

    Args:
        root: dataset folder.
        **kwargs: arguments of :func:`generate_synth_h36m` (defaults as there).

    Returns:
        The paths dict of :func:`generate_synth_h36m`.
    """
    root = _check_root(root)
    kw: Dict[str, Any] = {
        "subjects": H36M_SUBJECTS,
        "frames_per_subject": 200,
        "image_size": (256, 256),
        "seed": 0,
        "cameras_pkl": None,
    }
    unknown = set(kwargs) - set(kw) - {"progress"}
    if unknown:
        raise TypeError(f"ensure_synth_h36m got unexpected arguments {sorted(unknown)}")
    kw.update(kwargs)
    progress = kw.pop("progress", True)
    with _exclusive(root):
        if _marker_matches(root, _h36m_params(**kw)):
            return _h36m_paths(root)
        return generate_synth_h36m(root, progress=progress, **kw)
