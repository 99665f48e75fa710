"""The SynthH36M writer: synthetic studio frames in both public Human3.6M layouts.

:func:`generate_synth_h36m` renders each sampled 3-D pose from the 4 cameras of the subject
(perspective: limb thickness and shading follow depth, far parts are drawn first) and writes
both annotation layouts :class:`rle.datasets.h36m.H36MDataset` reads, for the same frames::

    root/images/S1/S1_Directions_1.54138969/S1_Directions_1.54138969_000001.jpg
    root/annotation_body3d/fps50/h36m_{train,test}.npz      MMPose: imgname, center, scale, part, S
    root/annotation_body3d/cameras.pkl                      MMPose: (subject, cam_id) -> R, T, ...
    root/annotations/h36m_rle_{train,test}_protocol_2.json  official RLE: images + annotations
    root/.complete

Camera conventions are those of :mod:`rle.datasets.cameras` (``cameras.pkl`` with T in metres,
the RLE json with t in mm, ``R_json = R_pkl^T``). Images are small, so ``f`` and ``c`` are
rescaled to the generated size; rendering has no lens distortion (``k = p = 0`` are written),
so the pinhole projection of ``S`` equals ``part``. Protocol 2 split
(:data:`rle.datasets.h36m.SPLITS`): train S1, S5, S6, S7, S8; test S9, S11.

The npz arrays follow MMPose's ``preprocess_h36m``: ``imgname`` (N,) str relative to
``root/images``, ``center`` (N, 2) centre of the 2-D joints' box, ``scale`` (N,) = 1.2 x its
longer side / 200, ``part`` (N, 17, 3) pixels + visibility 1, ``S`` (N, 17, 4) camera-frame
metres + visibility 1. The RLE json has parallel lists ``images`` (id, file_name as
``imgname``, width, height, subject as an int like the official files, action_name,
action_idx = 2..16, subaction_idx, cam_idx = 1..4, frame_idx) and ``annotations`` (id,
image_id, bbox [x, y, w, h] of the drawn person, keypoints_world (17, 3) mm,
cam_param {R (3, 3), t (3,) mm, f (2,), c (2,)}); row i of the npz and the json is one image.
"""

from __future__ import annotations

import math
import os
import pickle
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from tqdm import tqdm

from rle.datasets.cameras import mmpose_to_rle_camera, project, world_to_camera_mmpose
from rle.datasets.h36m import CAMERA_IDS, H36M_ACTIONS, H36M_SUBJECTS, SPLITS
from rle.datasets.synthetic import render, store
from rle.datasets.synthetic.body import (
    ACTION_STYLE,
    ANKLE_MM,
    rot,
    sample_bodies,
    sample_proportions,
)
from rle.datasets.synthetic.checks import PathLike, check_int, check_root, check_seed, check_size
from rle.serialization import load_pickle

__all__ = ["SYNTH_H36M", "ensure_synth_h36m", "generate_synth_h36m"]

Camera = Dict[str, Any]  # an MMPose cameras.pkl entry: R, T, f, c, k, p, w, h, name, id


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
        "version": store.FORMAT_VERSION,
        "subjects": sorted(subjects, key=H36M_SUBJECTS.index),
        "frames_per_subject": check_int(frames_per_subject, "frames_per_subject", 1),
        "image_size": list(check_size(image_size)),
        "seed": check_seed(seed),
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


# -------------------------------------------------------------------------------------- cameras
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
) -> Dict[Tuple[str, str], Camera]:
    """Four studio cameras per subject laid out like Human3.6M's, at 1000 x 1002 pixels."""
    rig = np.array([[1.9, 4.9], [1.9, -5.0], [-1.7, 5.2], [-1.7, -3.8]])  # centres (m) on floor
    cams = {}
    for subject in subjects:
        for i, cam_id in enumerate(CAMERA_IDS):
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
    cams: Dict[Tuple[str, str], Camera], subjects: Sequence[str], width: int, height: int
) -> Dict[Tuple[str, str], Camera]:
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


def _project(world_mm: np.ndarray, cam: Camera) -> Tuple[np.ndarray, np.ndarray]:
    """World points (..., 3) mm -> camera-frame mm (..., 3) and pixels (..., 2), no distortion."""
    xc = world_to_camera_mmpose(world_mm, cam["R"], cam["T"] * 1000.0)
    return xc, project(xc, cam["f"], cam["c"])


# ------------------------------------------------------------------------------------ rendering
def _place_in_view(
    rng: np.random.Generator, body: np.ndarray, cams: Sequence[Camera]
) -> np.ndarray:
    """Yaw, floor and position (n, 23, 3) body-frame poses so every camera sees them whole."""
    n = len(body)
    world = np.einsum("nij,nkj->nki", rot(2, rng.uniform(0, 2 * np.pi, n)), body)
    world[:, :, 2] += ANKLE_MM - world[:, [3, 6], 2].min(1, keepdims=True)
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


def _room_background(rng: np.random.Generator, cam: Camera, width: int, height: int) -> np.ndarray:
    """Static studio view of one camera: textured walls and a projected floor with a grid."""
    img = render.textured_background(rng, width, height)
    g = np.linspace(-5000.0, 5000.0, 21)
    grid = np.stack(np.meshgrid(g, g, indexing="ij"), -1)
    floor = np.concatenate([grid, np.zeros(grid.shape[:2] + (1,))], -1)
    xc, uv = _project(floor, cam)
    front = xc[..., 2] > 300
    if front.sum() >= 3:
        hull = cv2.convexHull(np.round(uv[front] * render.FP).astype(np.int32))
        cv2.fillConvexPoly(
            img, hull, render.bgr(render.colour(rng, 60, 170)), cv2.LINE_AA, render.SHIFT
        )
        line_col = render.bgr(render.colour(rng, 30, 220))
        for di, dj in ((0, 1), (1, 0)):
            for i in range(21 - di):
                for j in range(21 - dj):
                    p, q = (i, j), (i + di, j + dj)
                    if front[p] and front[q] and np.abs(uv[p] - uv[q]).max() < 4 * width:
                        a, b = render.fp(uv[p]), render.fp(uv[q])
                        cv2.line(img, a, b, line_col, 1, cv2.LINE_AA, render.SHIFT)
    return img


def _h36m_frame_image(
    rng: np.random.Generator,
    background: np.ndarray,
    world: np.ndarray,
    cam: Camera,
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
        hull = cv2.convexHull(np.round(suv * render.FP).astype(np.int32))
        cv2.fillConvexPoly(dark, hull, (20, 20, 20), cv2.LINE_AA, render.SHIFT)
        img = cv2.addWeighted(img, 0.65, dark, 0.35, 0)
    xc, uv = _project(world, cam)
    mask = np.zeros((height, width), np.uint8)
    px_mm = float(cam["f"].mean()) / xc[:, 2]
    render.render_body(img, uv, px_mm, xc[:, 2], colours, 5000.0, 1.0, mask=mask)
    x0, y0, bw, bh = cv2.boundingRect(mask)
    return render.add_grain(rng, img), xc, uv, [float(x0), float(y0), float(bw), float(bh)]


# ---------------------------------------------------------------------------------- the writer
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
        root: output folder (str or path); a previous synthetic generation in it is replaced.
        subjects: subject names from :data:`rle.datasets.h36m.H36M_SUBJECTS`; S1, S5-S8 go to
            the train files and S9, S11 to the test files (either may be empty).
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
    root = check_root(root)
    params = _h36m_params(subjects, frames_per_subject, image_size, seed, cameras_pkl)
    subjects, n_frames = params["subjects"], params["frames_per_subject"]
    width, height = params["image_size"]
    if params["cameras_pkl"] is not None:  # the restricted unpickler: no code from the file
        source = load_pickle(params["cameras_pkl"])
    paths = _h36m_paths(root)
    rng = np.random.default_rng(params["seed"])
    if params["cameras_pkl"] is None:
        source = _builtin_cameras(rng, subjects)
    cams = _scaled_cameras(source, subjects, width, height)
    store.start(root, params, ("images", "annotation_body3d", "annotations"))

    splits: Dict[str, Dict[str, list]] = {
        split: {k: [] for k in ("imgname", "center", "scale", "part", "S", "images", "anns")}
        for split in ("train", "test")
    }
    image_id = 0
    bar = tqdm(total=len(subjects) * n_frames * 4, desc="SynthH36M", unit="img",
               disable=not progress)  # fmt: skip
    for subject in subjects:
        split = splits["train" if subject in SPLITS["train"] else "test"]
        cam_ids = sorted(cid for (s, cid) in cams if s == subject)
        subject_cams = [cams[(subject, cid)] for cid in cam_ids]
        bones = sample_proportions(rng, 1, 0.05).repeat(n_frames, 0)
        colours = render.person_colours(rng)
        backgrounds = [_room_background(rng, cam, width, height) for cam in subject_cams]
        actions = np.arange(n_frames) % len(H36M_ACTIONS)
        body = sample_bodies(rng, ACTION_STYLE[actions], bones)
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
                store.write_jpeg(out, img)
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
                cam_param = {k: v.tolist() for k, v in mmpose_to_rle_camera(cam).items()}
                split["anns"].append(
                    {
                        "id": image_id,
                        "image_id": image_id,
                        "bbox": bbox,
                        "keypoints_world": world[i, :17].tolist(),
                        "cam_param": cam_param,
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
        store.dump_json({"images": s["images"], "annotations": s["anns"]}, paths[f"{name}_json"])
    with open(paths["cameras"], "wb") as f:
        pickle.dump(cams, f, protocol=4)
    store.finish(root, params)
    return paths


def _num_images(params: Dict[str, Any]) -> int:
    return 4 * len(params["subjects"]) * params["frames_per_subject"]  # 4 cameras a subject


#: SynthH36M as :func:`rle.datasets.synthetic.store.ensure` and ``make`` take it
SYNTH_H36M = store.SynthSet(generate_synth_h36m, _h36m_params, _h36m_paths, _num_images)


def ensure_synth_h36m(root: PathLike, **kwargs: Any) -> Dict[str, Path]:
    """Run :func:`generate_synth_h36m` unless ``root/.complete`` records the same arguments
    (a ``cameras_pkl`` by its resolved path); see :func:`rle.datasets.synthetic.store.ensure`."""
    return store.ensure(SYNTH_H36M, root, **kwargs)
