"""Drawing for the synthetic sets: people, textured backgrounds, random shapes and grain.

People are drawn with cv2 from the 23 points of :mod:`rle.datasets.synthetic.body` as
anti-aliased thick limbs, a torso polygon and a head ellipse, in painter's order; left and
right limbs differ only by a slightly darker shade. Geometry is passed to cv2 in fixed point
(:data:`SHIFT` fractional bits) so that sub-pixel keypoints and drawn pixels agree.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from rle.datasets.synthetic.body import HEAD_C, L_EYE, NOSE, R_EYE

__all__ = [
    "FP",
    "PARTS",
    "SHIFT",
    "add_grain",
    "bgr",
    "colour",
    "fp",
    "person_colours",
    "random_shape",
    "render_body",
    "textured_background",
]

SHIFT = 4  # cv2 fixed-point bits: sub-pixel drawing keeps labels and pixels consistent
FP = float(1 << SHIFT)

#: drawn parts: (part id, kind, body points, radius mm, colour key, side 0 centre/1 left/2 right)
PARTS = (
    (1, "torso", (11, 14, 1, 4, 0, 8), 0.0, "shirt", 0),
    (2, "seg", (8, HEAD_C), 45.0, "skin", 0),
    (3, "head", (HEAD_C, 9, 10), 0.0, "skin", 0),
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


def colour(rng: np.random.Generator, lo: float, hi: float) -> np.ndarray:
    """A uniformly random (3,) BGR float colour with channels in [lo, hi)."""
    return rng.uniform(lo, hi, 3)


def person_colours(rng: np.random.Generator) -> Dict[str, np.ndarray]:
    """Clothing and skin colours of one person: (3,) BGR floats keyed by the :data:`PARTS`
    colour keys and ``"hair"``."""
    tones = np.array([[80, 110, 160], [60, 85, 130], [130, 160, 215], [40, 55, 85], [95, 140, 190]])
    skin = tones[rng.integers(0, len(tones))] + rng.normal(0, 8, 3)
    return {
        "shirt": colour(rng, 15, 240),
        "pants": colour(rng, 15, 200),
        "skin": skin,
        "shoes": colour(rng, 10, 80),
        "hair": colour(rng, 5, 90),
    }


def fp(p: np.ndarray) -> Tuple[int, int]:
    """A (2,) point in image index units -> cv2 fixed-point integer coordinates."""
    return int(round(p[0] * FP)), int(round(p[1] * FP))


def bgr(c: np.ndarray) -> Tuple[float, float, float]:
    """A (3,) colour clipped to [0, 255] as the float tuple cv2 expects."""
    c = np.clip(c, 0, 255)
    return float(c[0]), float(c[1]), float(c[2])


def _draw_shape(
    targets: Sequence[Tuple[np.ndarray, Any, float, int]], kind: str, geo: Dict[str, Any]
) -> None:
    """Draw one primitive into several targets: (array, colour, thickness scale, line type)."""
    for dst, col, tscale, lt in targets:
        if kind == "seg":
            t = max(1, int(round(geo["thick"] * tscale)))
            cv2.line(dst, geo["p"], geo["q"], col, t, lt, SHIFT)
        elif kind == "blob":
            r = max(1, int(round(geo["r"] * tscale)))
            cv2.circle(dst, geo["p"], r, col, -1, lt, SHIFT)
        elif kind == "poly":
            cv2.fillConvexPoly(dst, geo["pts"], col, lt, SHIFT)
        elif kind == "ellipse":
            axes = (max(1, int(geo["axes"][0] * tscale)), max(1, int(geo["axes"][1] * tscale)))
            cv2.ellipse(dst, geo["p"], axes, geo["angle"], 0, 360, col, -1, lt, SHIFT)


def render_body(
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
        colours: the person's colours from :func:`person_colours`.
        shade_ref, shade_gain: parts at depth ``d`` are lit by
            ``1 + shade_gain * (shade_ref - d) / shade_ref`` (nearer = brighter).
        label: optional (H, W) uint8 map receiving ``label_base + part id`` (no anti-aliasing).
        mask: optional (H, W) uint8 silhouette of this person (set to 1).
    """
    order = sorted(PARTS, key=lambda part: -float(depth[list(part[2])].mean()))
    for pid, kind, idx, radius, key, side in order:
        d = float(depth[list(idx)].mean())
        light = float(np.clip(1.0 + shade_gain * (shade_ref - d) / shade_ref, 0.55, 1.25))
        base = colours[key] * light * (0.88 if side == 2 else 1.0)
        # (primitive, geometry, colour, cylinder shading)
        geo_list: List[Tuple[str, Dict[str, Any], Optional[np.ndarray], bool]] = []
        scale = float(px_mm[list(idx)].mean())
        if kind == "seg":
            geo = {"p": fp(uv[idx[0]]), "q": fp(uv[idx[1]]), "thick": 2 * radius * scale}
            geo_list.append(("seg", geo, base, True))
        elif kind == "blob":
            geo_list.append(("blob", {"p": fp(uv[idx[0]]), "r": radius * scale * FP}, base, True))
        elif kind == "torso":
            quad = np.round(uv[list(idx[:4])] * FP).astype(np.int32)
            geo_list.append(("poly", {"pts": cv2.convexHull(quad)}, base, False))
            # thick spine and girdles keep the torso solid when seen edge-on
            pants = colours["pants"] * light
            for a, b, r, col in ((0, 8, 95.0, base), (11, 14, 55.0, base), (1, 4, 70.0, pants)):
                geo = {"p": fp(uv[a]), "q": fp(uv[b]), "thick": 2 * r * scale}
                geo_list.append(("seg", geo, col, a != 1))
        else:  # head: hair behind / face in front, whichever side faces the camera
            centre, neck, top = uv[HEAD_C], uv[9], uv[10]
            up = top - neck
            angle = math.degrees(math.atan2(up[0], -up[1])) if np.hypot(*up) > 1e-6 else 0.0
            axes = (90.0 * scale * FP, 112.0 * scale * FP)
            to_nose = uv[NOSE] - centre
            facing = depth[NOSE] < depth[HEAD_C]
            face = {"p": fp(centre + 0.25 * to_nose), "axes": axes, "angle": angle}
            hair = {"p": fp(centre - 0.2 * to_nose - 0.1 * up), "axes": axes, "angle": angle}
            skin, hair_col = colours["skin"] * light, colours["hair"] * light
            if facing:
                geo_list += [("ellipse", hair, hair_col, False), ("ellipse", face, skin, False)]
                # faint eyes and nose: the front/back cue a real face gives
                for j, r, dim in ((L_EYE, 9.0, 0.35), (R_EYE, 9.0, 0.35), (NOSE, 11.0, 0.8)):
                    geo = {"p": fp(uv[j]), "r": r * scale * FP}
                    geo_list.append(("blob", geo, skin * dim, False))
            else:
                geo_list += [("ellipse", face, skin, False), ("ellipse", hair, hair_col, False)]
        for shape, geo, col, cylinder in geo_list:
            targets: List[Tuple[np.ndarray, Any, float, int]] = []
            if cylinder:  # a lighter core on a darker rim reads as a rounded limb
                targets.append((img, bgr(col * 0.75), 1.0, cv2.LINE_AA))
                targets.append((img, bgr(col * 1.05), 0.55, cv2.LINE_AA))
            else:
                targets.append((img, bgr(col), 1.0, cv2.LINE_AA))
            if label is not None:
                targets.append((label, label_base + pid, 1.0, cv2.LINE_8))
            if mask is not None:
                targets.append((mask, 1, 1.0, cv2.LINE_8))
            _draw_shape(targets, shape, geo)


def random_shape(
    rng: np.random.Generator,
    targets: Sequence[Tuple[np.ndarray, Any]],
    centre: np.ndarray,
    size: float,
    filled: bool = True,
) -> None:
    """Draw a random rectangle, ellipse, convex polygon or thick line into every target.

    Args:
        rng: the generator.
        targets: (array, colour) pairs; (H, W, 3) images are anti-aliased, (H, W) label
            maps are not.
        centre: (2,) centre in image index units.
        size: the shape's largest extent in pixels.
        filled: filled shape (else an outline).
    """
    kind = int(rng.integers(0, 4))
    angle = float(rng.uniform(0, 180))
    w, h = size * rng.uniform(0.3, 1.0, 2)
    thick = -1 if filled else int(rng.integers(1, 4))
    if kind == 0:
        box = cv2.boxPoints(((float(centre[0]), float(centre[1])), (float(w), float(h)), angle))
        pts = np.round(box * FP).astype(np.int32)
    elif kind == 2:
        pts = np.round((centre + rng.normal(0, size / 3, (6, 2))) * FP).astype(np.int32)
        pts = cv2.convexHull(pts)
    for dst, col in targets:
        lt = cv2.LINE_AA if dst.ndim == 3 else cv2.LINE_8
        if kind == 1:
            axes = (max(1, int(w * FP / 2)), max(1, int(h * FP / 2)))
            cv2.ellipse(dst, fp(centre), axes, angle, 0, 360, col, thick, lt, SHIFT)
        elif kind == 3:
            d = np.array([math.cos(math.radians(angle)), math.sin(math.radians(angle))]) * w
            t = max(1, int(h / 4))
            cv2.line(dst, fp(centre - d), fp(centre + d), col, t, lt, SHIFT)
        elif filled:
            cv2.fillConvexPoly(dst, pts, col, lt, SHIFT)
        else:
            cv2.polylines(dst, [pts], True, col, thick, lt, SHIFT)


def textured_background(
    rng: np.random.Generator, width: int, height: int, clutter: float = 1.0
) -> np.ndarray:
    """Cluttered background: coloured blotches, a gradient, fine texture and random shapes.

    Args:
        rng: the generator.
        width, height: image size in pixels.
        clutter: scales the number of random shapes (6-17 at 1).

    Returns:
        (height, width, 3) uint8 BGR image.
    """
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
        col = bgr(colour(rng, 0, 255))
        random_shape(rng, [(img, col)], centre, diag * rng.uniform(0.05, 0.35), rng.random() < 0.7)
    # Photos are far less saturated than uniform random colours.
    grey = cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    alpha = float(rng.uniform(0.2, 0.6))
    return cv2.addWeighted(img, 1.0 - alpha, grey, alpha, 0.0)


def add_grain(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Sensor noise and occasional defocus, so edges are not perfectly clean.

    Args:
        rng: the generator.
        img: (H, W, 3) uint8 image (not modified).

    Returns:
        (H, W, 3) uint8 image.
    """
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (3, 3), 0)
    noise = rng.normal(0, rng.uniform(2, 7), img.shape).astype(np.float32)
    return np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)
