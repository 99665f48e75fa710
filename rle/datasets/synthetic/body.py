"""The articulated 3-D body model both synthetic sets draw: proportions and pose sampling.

A body is 23 points in mm: the 17 Human3.6M joints (:data:`rle.datasets.h36m.H36M_JOINT_NAMES`
order), then the head centre and the 5 COCO face points (nose, left/right eye, left/right
ear). Bone lengths are Human3.6M means, scaled and jittered per person; joint angles are
sampled per action style (standing, walking, sitting, phoning, ...).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "ACTION_STYLE",
    "ANKLE_MM",
    "BONES",
    "BONE_MM",
    "COCO_FROM_BODY",
    "HEAD_C",
    "L_EAR",
    "L_EYE",
    "NOSE",
    "R_EAR",
    "R_EYE",
    "STYLES",
    "body_height",
    "rot",
    "sample_bodies",
    "sample_proportions",
]

# Mean Human3.6M bone lengths (mm); people scale and jitter them.
BONES = ("hip", "thigh", "shin", "spine", "chest", "neck", "head", "shoulder", "uarm", "farm")
BONE_MM = np.array([132.0, 442.0, 454.0, 233.0, 257.0, 121.0, 115.0, 151.0, 278.0, 251.0])
_B = {name: i for i, name in enumerate(BONES)}
# Body points after the 17 H36M joints.
HEAD_C, NOSE, L_EYE, R_EYE, L_EAR, R_EAR = range(17, 23)
#: body point of each of the 17 COCO keypoints (:data:`rle.datasets.coco.COCO_KEYPOINT_NAMES`)
COCO_FROM_BODY = np.array([18, 19, 20, 21, 22, 11, 14, 12, 15, 13, 16, 4, 1, 5, 2, 6, 3])
ANKLE_MM = 90.0  # the H36M "foot" joint is the ankle, this far above the floor

STYLES = ("stand", "walk", "sit", "sitdown", "phone", "photo", "greet", "pose")
#: style index of each of the 15 :data:`rle.datasets.h36m.H36M_ACTIONS`
ACTION_STYLE = np.array(
    [STYLES.index(s) for s in (
        "stand", "stand", "sit", "greet", "phone", "pose", "stand", "sit", "sitdown", "phone",
        "photo", "stand", "walk", "walk", "walk",
    )]
)  # fmt: skip


def rot(axis: int, angle: np.ndarray) -> np.ndarray:
    """Batched rotation matrices about a coordinate axis.

    Args:
        axis: 0, 1 or 2 (x, y, z).
        angle: (n,) radians.

    Returns:
        (n, 3, 3) rotation matrices.
    """
    c, s = np.cos(angle), np.sin(angle)
    out = np.zeros(angle.shape + (3, 3))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    out[..., axis, axis] = 1.0
    out[..., i, i], out[..., i, j], out[..., j, i], out[..., j, j] = c, -s, s, c
    return out


def sample_proportions(rng: np.random.Generator, n: int, spread: float) -> np.ndarray:
    """Per-person bone lengths: a global size times a per-bone jitter.

    Args:
        rng: the generator.
        n: number of people.
        spread: standard deviation of the global size (clipped at 3 s.d.).

    Returns:
        (n, 10) bone lengths in mm, columns in :data:`BONES` order.
    """
    size = np.clip(rng.normal(1.0, spread, (n, 1)), 1.0 - 3 * spread, 1.0 + 3 * spread)
    return BONE_MM * size * rng.uniform(0.95, 1.05, (n, len(BONES)))


def sample_bodies(rng: np.random.Generator, styles: np.ndarray, bones: np.ndarray) -> np.ndarray:
    """Sample articulated poses.

    Args:
        rng: the generator.
        styles: (n,) indices into :data:`STYLES` (action-dependent joint-angle ranges).
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

    m = styles == STYLES.index("walk")
    swing = uni(-30, 30)
    hip_flex = np.where(m, np.stack([swing, -swing]) + gauss(0, 5, -10, 10, (2, n)), hip_flex)
    knee = np.where(m, limbs(0, 50), knee)
    sh_flex = np.where(m, np.stack([-0.8 * swing, 0.8 * swing]) + limbs(-8, 8), sh_flex)
    sh_abd, elbow = np.where(m, limbs(5, 20), sh_abd), np.where(m, limbs(10, 45), elbow)
    m = styles == STYLES.index("sit")
    hip_flex, knee = np.where(m, limbs(70, 105), hip_flex), np.where(m, limbs(60, 110), knee)
    hip_abd, lean = np.where(m, limbs(0, 25), hip_abd), np.where(m, uni(0, 35), lean)
    sh_flex, elbow = np.where(m, limbs(-10, 60), sh_flex), np.where(m, limbs(20, 120), elbow)
    m = styles == STYLES.index("sitdown")
    hip_flex, knee = np.where(m, limbs(20, 100), hip_flex), np.where(m, limbs(20, 110), knee)
    lean = np.where(m, uni(10, 50), lean)
    m = styles == STYLES.index("phone")  # right hand at the head
    sh_flex[1] = np.where(m, uni(10, 50), sh_flex[1])
    sh_abd[1] = np.where(m, uni(10, 45), sh_abd[1])
    sh_rot[1] = np.where(m, uni(30, 80), sh_rot[1])
    elbow[1] = np.where(m, uni(120, 150), elbow[1])
    m = styles == STYLES.index("photo")  # both hands at the face
    sh_flex, sh_abd = np.where(m, limbs(50, 90), sh_flex), np.where(m, limbs(10, 40), sh_abd)
    elbow = np.where(m, limbs(100, 140), elbow)
    m = (styles == STYLES.index("greet"))[None] & (np.arange(2)[:, None] == rng.integers(0, 2, n))
    sh_flex, sh_abd = np.where(m, limbs(80, 170), sh_flex), np.where(m, limbs(0, 60), sh_abd)
    elbow = np.where(m, limbs(0, 60), elbow)
    m = styles == STYLES.index("pose")
    sh_flex, sh_abd = np.where(m, limbs(-30, 170), sh_flex), np.where(m, limbs(0, 160), sh_abd)
    hip_flex, knee = np.where(m, limbs(-20, 60), hip_flex), np.where(m, limbs(0, 60), knee)
    hip_abd = np.where(m, limbs(0, 35), hip_abd)

    rad = np.radians
    L = {name: bones[:, i, None] for name, i in _B.items()}  # (n, 1) each
    pts = np.zeros((n, 23, 3))
    # Rotation matrices' columns are the rotated frame axes: R[:, :, 2] is "up" etc.
    r_torso = rot(0, rad(-lean)) @ rot(1, rad(side)) @ rot(2, rad(twist))
    pts[:, 7] = L["spine"] * r_torso[:, :, 2]
    pts[:, 8] = (L["spine"] + L["chest"]) * r_torso[:, :, 2]
    r_neck = r_torso @ rot(0, rad(-pitch)) @ rot(2, rad(yaw))
    x_n, y_n, z_n = r_neck[:, :, 0], r_neck[:, :, 1], r_neck[:, :, 2]
    pts[:, 9] = pts[:, 8] + L["neck"] * z_n + 15.0 * y_n
    pts[:, 10] = pts[:, 9] + L["head"] * z_n + 10.0 * y_n
    k = L["head"] / 115.0
    head_c = pts[:, 9] + k * (55.0 * z_n + 15.0 * y_n)
    pts[:, HEAD_C] = head_c
    pts[:, NOSE] = head_c + k * (95.0 * y_n - 20.0 * z_n)
    for s, sgn, (hip, kne, ank, sho, elb, wri, eye, ear) in (
        (0, -1.0, (4, 5, 6, 11, 12, 13, L_EYE, L_EAR)),
        (1, 1.0, (1, 2, 3, 14, 15, 16, R_EYE, R_EAR)),
    ):
        pts[:, eye] = head_c + k * (sgn * 32.0 * x_n + 80.0 * y_n + 15.0 * z_n)
        pts[:, ear] = head_c + k * (sgn * 75.0 * x_n - 5.0 * y_n)
        pts[:, hip, 0] = sgn * L["hip"][:, 0]
        r_thigh = rot(0, rad(hip_flex[s])) @ rot(1, rad(-sgn * hip_abd[s]))
        pts[:, kne] = pts[:, hip] - L["thigh"] * r_thigh[:, :, 2]
        r_shin = r_thigh @ rot(0, rad(-knee[s]))
        pts[:, ank] = pts[:, kne] - L["shin"] * r_shin[:, :, 2]
        pts[:, sho] = pts[:, 8] + sgn * L["shoulder"] * r_torso[:, :, 0] - 20.0 * r_torso[:, :, 2]
        r_uarm = r_torso @ rot(0, rad(sh_flex[s])) @ rot(1, rad(-sgn * sh_abd[s]))
        pts[:, elb] = pts[:, sho] - L["uarm"] * r_uarm[:, :, 2]
        r_farm = r_uarm @ rot(2, rad(sgn * sh_rot[s])) @ rot(0, rad(elbow[s]))
        pts[:, wri] = pts[:, elb] - L["farm"] * r_farm[:, :, 2]
    return pts


def body_height(bones: np.ndarray) -> np.ndarray:
    """Standing height, ankle to the top of the head.

    Args:
        bones: (n, 10) bone lengths in mm.

    Returns:
        (n,) heights in mm.
    """
    chain = ["thigh", "shin", "spine", "chest", "neck", "head"]
    return bones[:, [_B[c] for c in chain]].sum(1) + ANKLE_MM + 60.0
