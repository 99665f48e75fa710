"""Human3.6M: camera conventions and projection on the real sample, both annotation layouts,
protocol splits, the 3-D target pipeline and bad-input errors."""

import json
import pickle

import numpy as np
import pytest

from rle.datasets import H36MDataset
from rle.datasets.cameras import (
    camera_to_world_mmpose,
    mmpose_to_rle_camera,
    project,
    project_distorted,
    world_to_camera_mmpose,
    world_to_camera_rle,
)
from rle.datasets.h36m import parse_imgname
from tests.conftest import SHARED

H36M = SHARED / "data" / "h36m_sample"
NPZ, CAMS = H36M / "test_h36m_body3d.npz", H36M / "cameras.pkl"
needs_h36m = pytest.mark.skipif(not H36M.is_dir(), reason="shared Human3.6M sample absent")


def _sample():
    npz = np.load(NPZ)
    with open(CAMS, "rb") as f:
        cams = pickle.load(f)
    return npz, cams


def _cam_of(name, cams):
    info = parse_imgname(name)
    return cams[(info["subject"], info["camera_id"])]


@needs_h36m
def test_world_to_camera_conventions_agree_with_S():
    npz, cams = _sample()
    for name, s in zip(npz["imgname"], npz["S"]):
        cam = _cam_of(str(name), cams)
        x_cam_m = s[:, :3].astype(np.float64)
        world_m = camera_to_world_mmpose(x_cam_m, cam["R"], cam["T"])
        np.testing.assert_allclose(
            world_to_camera_mmpose(world_m, cam["R"], cam["T"]), x_cam_m, atol=1e-9
        )
        rle = mmpose_to_rle_camera(cam)
        # the official RLE convention (R^T, centre in mm) gives the same camera frame exactly
        np.testing.assert_allclose(
            world_to_camera_rle(world_m * 1000, rle["R"], rle["t"]), x_cam_m * 1000, atol=1e-6
        )


@needs_h36m
def test_projection_matches_part():
    npz, cams = _sample()
    for name, s, part in zip(npz["imgname"], npz["S"], npz["part"]):
        cam = _cam_of(str(name), cams)
        pinhole = project(s[:, :3], cam["f"], cam["c"])
        assert np.abs(pinhole - part[:, :2]).max() < 3.0  # the rest is lens distortion
        lens = project_distorted(s[:, :3], cam["f"], cam["c"], cam["k"], cam["p"])
        assert np.abs(lens - part[:, :2]).max() < 1e-3


@needs_h36m
def test_npz_layout_and_splits():
    kw = dict(ann_file=str(NPZ), camera_param_file=str(CAMS))
    ds = H36MDataset(subjects=("S1", "S5", "S7", "S8"), **kw)
    assert len(ds) == 4
    info = ds.get_data_info(2)
    assert (info["subject"], info["action"], info["camera_id"]) == ("S7", "Greeting", "55011271")
    npz = np.load(NPZ)
    np.testing.assert_allclose(info["keypoints_cam"], npz["S"][2, :, :3] * 1000, rtol=1e-6)
    np.testing.assert_allclose(info["keypoints"], npz["part"][2, :, :2], rtol=1e-6)
    assert len(H36MDataset(split="train", **kw)) == 4  # S1, S5, S7, S8 are training subjects
    with pytest.raises(ValueError, match=r"no samples for subjects \['S9', 'S11'\]"):
        H36MDataset(split="test", **kw)  # the sample has no test subject
    assert ds.metainfo["flip_indices"][1] == 4  # r_hip <-> l_hip
    assert len(H36MDataset(add_thorax=True, **kw).get_data_info(0)["keypoints"]) == 18


def _rle_json(tmp_path, npz, cams, n=4):
    images, anns = [], []
    for i in range(n):
        name = str(npz["imgname"][i])
        cam = _cam_of(name, cams)
        rle = mmpose_to_rle_camera(cam)
        world = camera_to_world_mmpose(npz["S"][i, :, :3], cam["R"], cam["T"]) * 1000
        info = parse_imgname(name)
        images.append(
            dict(
                id=i,
                file_name=name,
                width=1000,
                height=1000,
                subject=int(info["subject"][1:]),
                action_name=info["action"],
                subaction=info["subaction"],
                cam_idx=info["camera_id"],
            )
        )
        anns.append(
            dict(
                id=i,
                image_id=i,
                bbox=[100, 100, 300, 400],
                keypoints_world=world.tolist(),
                cam_param={k: np.asarray(v).tolist() for k, v in rle.items()},
            )
        )
    path = tmp_path / "h36m_rle.json"
    path.write_text(json.dumps(dict(images=images, annotations=anns)))
    return path


@needs_h36m
def test_official_json_layout_matches_npz(tmp_path):
    npz, cams = _sample()
    path = _rle_json(tmp_path, npz, cams)
    ds = H36MDataset(ann_file=str(path), subjects=("S1", "S5", "S7", "S8"))
    assert len(ds) == 4
    for i in range(4):
        info = ds.get_data_info(i)
        np.testing.assert_allclose(info["keypoints_cam"], npz["S"][i, :, :3] * 1000, atol=1e-2)
        cam = _cam_of(str(npz["imgname"][i]), cams)
        np.testing.assert_allclose(
            info["keypoints"], project(npz["S"][i, :, :3], cam["f"], cam["c"]), atol=1e-3
        )


@needs_h36m
def test_3d_target_pipeline():
    pipe = [
        dict(type="GetBBoxCenterScale"),
        dict(type="RandomFlip", prob=1.0),
        dict(type="TopdownAffine", input_size=(64, 64)),
        dict(type="EncodeKeypoints", num_dims=3),
        dict(type="PackPoseInputs"),
    ]
    ds = H36MDataset(
        ann_file=str(NPZ), camera_param_file=str(CAMS), subjects=("S1",), pipeline=pipe
    )
    info = ds.get_data_info(0)
    info["img"] = np.zeros((1002, 1000, 3), np.uint8)
    info["img_shape"] = (1002, 1000)
    out = ds.pipeline(info)["data_samples"]
    labels = out.keypoint_labels.numpy()
    assert labels.shape == (17, 3)
    assert labels[0, 2] == 0.0  # root-relative depth
    npz = np.load(NPZ)
    z = npz["S"][0, :, 2] * 1000
    flip = ds.metainfo["flip_indices"]
    np.testing.assert_allclose(labels[:, 2], (z[flip] - z[0]) / 2000, atol=1e-5)


# -- bad input -------------------------------------------------------------------------------
@needs_h36m
def test_unknown_camera(tmp_path):
    npz, cams = _sample()
    cams = {k: v for k, v in cams.items() if k != ("S7", "55011271")}
    bad = tmp_path / "cams.pkl"
    bad.write_bytes(pickle.dumps(cams))
    with pytest.raises(ValueError, match=r"record 2 .*camera \('S7', '55011271'\)"):
        H36MDataset(ann_file=str(NPZ), camera_param_file=str(bad), subjects=("S7",))


@needs_h36m
def test_npz_missing_key_and_bad_shape(tmp_path):
    npz = dict(np.load(NPZ))
    path = tmp_path / "a.npz"
    np.savez(path, **{k: v for k, v in npz.items() if k != "S"})
    with pytest.raises(ValueError, match="missing key 'S'"):
        H36MDataset(ann_file=str(path), camera_param_file=str(CAMS))
    npz["part"] = npz["part"][:, :16]
    np.savez(path, **npz)
    with pytest.raises(ValueError, match=r"key 'part' must have shape \(4, 17, 3\)"):
        H36MDataset(ann_file=str(path), camera_param_file=str(CAMS))


def test_truncated_npz_and_json(tmp_path):
    npz_path = tmp_path / "t.npz"
    npz_path.write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(ValueError, match="malformed or truncated .npz"):
        H36MDataset(ann_file=str(npz_path), camera_param_file="x.pkl")
    js = tmp_path / "t.json"
    js.write_text('{"images": [')
    with pytest.raises(ValueError, match="malformed or truncated json"):
        H36MDataset(ann_file=str(js))


def test_json_record_errors(tmp_path):
    js = tmp_path / "t.json"
    base = dict(
        images=[dict(id=0, file_name="a.jpg", subject=1)],
        annotations=[
            dict(
                id=5,
                image_id=0,
                bbox=[0, 0, 10, 10],
                keypoints_world=[[0, 0, 0]] * 16,
                cam_param=dict(R=np.eye(3).tolist(), t=[0, 0, 0], f=[1, 1], c=[0, 0]),
            )
        ],
    )
    js.write_text(json.dumps(base))
    with pytest.raises(ValueError, match="annotation 5: field 'keypoints_world' must be 17 x 3"):
        H36MDataset(ann_file=str(js), subjects=("S1",))
    del base["annotations"][0]["cam_param"]
    js.write_text(json.dumps(base))
    with pytest.raises(ValueError, match="annotation 5: missing field 'cam_param'"):
        H36MDataset(ann_file=str(js), subjects=("S1",))


def test_parse_imgname():
    assert parse_imgname("S11/S11_WalkDog.60457274/S11_WalkDog.60457274_000123.jpg") == dict(
        subject="S11", action="WalkDog", subaction="", camera_id="60457274"
    )
    assert parse_imgname("s_09_act_02_subact_01_ca_03/x.jpg")["subject"] == "S9"
    with pytest.raises(ValueError, match="cannot parse"):
        parse_imgname("frame.jpg")
    with pytest.raises(ValueError, match="split"):
        H36MDataset(ann_file="x.npz", split="val")
