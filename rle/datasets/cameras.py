"""Human3.6M camera conventions (there are two) and projections.

MMPose ``cameras.pkl`` (keyed ``(subject, camera_id)``): ``R`` (3, 3), ``T`` (3, 1) = camera
centre in **metres**, ``f``, ``c`` (2, 1), distortion ``k`` (3, 1), ``p`` (2, 1)::

    X_cam = (X_world - T^T) @ R          # R is the transpose of the usual world->camera matrix

Official RLE json (``cam_param`` per annotation): ``R`` (3, 3), ``t`` (3,) = camera centre in
**millimetres**, ``f``, ``c`` (2,)::

    X_cam = R @ (X_world - t)

so ``R_rle = R_mmpose^T`` and ``t_rle = 1000 T_mmpose``. Projection: pinhole
``u = f * X / Z + c``; the Human3.6M lens model adds radial ``k`` and tangential ``p`` terms
(:func:`project_distorted`).
"""

from __future__ import annotations

from typing import Dict

import numpy as np

__all__ = [
    "camera_to_world_mmpose",
    "mmpose_to_rle_camera",
    "project",
    "project_distorted",
    "world_to_camera_mmpose",
    "world_to_camera_rle",
]


def world_to_camera_mmpose(x_world: np.ndarray, R: np.ndarray, T: np.ndarray) -> np.ndarray:
    """``(..., 3)`` world points (units of ``T``) -> camera frame: ``(X - T^T) @ R``."""
    return (np.asarray(x_world, dtype=np.float64) - np.asarray(T).reshape(1, 3)) @ np.asarray(R)


def camera_to_world_mmpose(x_cam: np.ndarray, R: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Inverse of :func:`world_to_camera_mmpose`: ``X_cam @ R^T + T^T``."""
    return np.asarray(x_cam, dtype=np.float64) @ np.asarray(R).T + np.asarray(T).reshape(1, 3)


def world_to_camera_rle(x_world: np.ndarray, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``(N, 3)`` world points in mm -> camera frame (mm): ``R @ (X - t)``."""
    diff = np.asarray(x_world, dtype=np.float64) - np.asarray(t, dtype=np.float64).reshape(1, 3)
    return diff @ np.asarray(R, dtype=np.float64).T


def mmpose_to_rle_camera(cam: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """An MMPose camera dict -> the official RLE ``cam_param`` (``R^T``, centre in mm)."""
    return dict(
        R=np.asarray(cam["R"], dtype=np.float64).T,
        t=np.asarray(cam["T"], dtype=np.float64).reshape(3) * 1000.0,
        f=np.asarray(cam["f"], dtype=np.float64).reshape(2),
        c=np.asarray(cam["c"], dtype=np.float64).reshape(2),
    )


def project(x_cam: np.ndarray, f, c) -> np.ndarray:
    """Pinhole projection of camera-frame points ``(..., 3)`` -> pixels ``(..., 2)``."""
    x = np.asarray(x_cam, dtype=np.float64)
    return x[..., :2] / x[..., 2:3] * np.asarray(f, dtype=np.float64).reshape(1, 2) + np.asarray(
        c, dtype=np.float64
    ).reshape(1, 2)


def project_distorted(x_cam: np.ndarray, f, c, k, p) -> np.ndarray:
    """Human3.6M lens model: radial ``k = (k1, k2, k3)`` and tangential ``p = (p1, p2)``."""
    x = np.asarray(x_cam, dtype=np.float64)
    xy = x[:, :2] / x[:, 2:3]
    r2 = (xy**2).sum(1, keepdims=True)
    k = np.asarray(k, dtype=np.float64).reshape(3)
    p = np.asarray(p, dtype=np.float64).reshape(2)
    radial = 1 + k[0] * r2 + k[1] * r2**2 + k[2] * r2**3
    tan = p[0] * xy[:, 1:2] + p[1] * xy[:, 0:1]
    xyd = xy * (radial + tan) + p[::-1].reshape(1, 2) * r2
    return xyd * np.asarray(f, dtype=np.float64).reshape(1, 2) + np.asarray(
        c, dtype=np.float64
    ).reshape(1, 2)
