"""SynthCOCO / SynthH36M: real file formats, label rules, camera consistency, determinism."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import pickle
import subprocess
import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from rle.datasets import cameras
from rle.datasets import coco as real_coco
from rle.datasets import h36m as real_h36m
from rle.datasets import synthetic as syn
from rle.datasets.synthetic import body

SHARED = Path(__file__).resolve().parents[2] / "shared"
REAL_COCO = SHARED / "data" / "coco_sample" / "test_coco.json"
REAL_NPZ = SHARED / "data" / "h36m_sample" / "test_h36m_body3d.npz"
REAL_CAMERAS = SHARED / "data" / "h36m_sample" / "cameras.pkl"


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth_coco")
    paths = syn.generate_synth_coco(root, 40, 12, image_size=(160, 120), seed=3, progress=False)
    data = {split: json.loads(paths[f"{split}_json"].read_text()) for split in ("train", "val")}
    return paths, data


@pytest.fixture(scope="module")
def h36m(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth_h36m")
    paths = syn.generate_synth_h36m(
        root, frames_per_subject=2, image_size=(96, 96), seed=5, progress=False
    )
    return paths


@pytest.fixture(scope="module")
def h36m_real_cams(tmp_path_factory):
    if not REAL_CAMERAS.exists():
        pytest.skip("real Human3.6M cameras.pkl not available")
    root = tmp_path_factory.mktemp("synth_h36m_real")
    return syn.generate_synth_h36m(
        root, subjects=("S1", "S9"), frames_per_subject=2, image_size=(128, 128), seed=1,
        cameras_pkl=REAL_CAMERAS, progress=False,
    )  # fmt: skip


# ----------------------------------------------------------------------------------- SynthCOCO
def _coco_eval_ap(json_path: Path, anns) -> float:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(json_path))
        preds = [
            {"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
            for a in anns
        ]
        ev = COCOeval(gt, gt.loadRes(preds), "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0])


@pytest.mark.parametrize("split", ["train", "val"])
def test_coco_gt_as_prediction_gives_ap_one(coco, split):
    paths, data = coco
    assert _coco_eval_ap(paths[f"{split}_json"], data[split]["annotations"]) == pytest.approx(1.0)


def test_coco_structure(coco):
    paths, data = coco
    for split in ("train", "val"):
        d = data[split]
        assert set(d) == {"info", "licenses", "categories", "images", "annotations"}
        sizes = {}
        for im in d["images"]:
            assert {"id", "file_name", "width", "height"} <= set(im)
            img = cv2.imread(str(paths[f"{split}_images"] / im["file_name"]))
            assert img.shape == (im["height"], im["width"], 3)
            sizes[im["id"]] = (im["width"], im["height"])
        ids = [a["id"] for a in d["annotations"]]
        assert len(set(ids)) == len(ids)
        for a in d["annotations"]:
            assert a["category_id"] == 1 and a["iscrowd"] == 0
            w, h = sizes[a["image_id"]]
            x, y, bw, bh = a["bbox"]
            assert 0 <= x and 0 <= y and bw > 0 and bh > 0 and x + bw <= w and y + bh <= h
            assert 0 < a["area"] <= bw * bh
            assert a["segmentation"] and all(
                len(p) >= 6 and len(p) % 2 == 0 for p in a["segmentation"]
            )
            kp = np.array(a["keypoints"]).reshape(17, 3)
            labelled = kp[kp[:, 2] > 0, :2]
            # labelled joints lie on the drawn person, hence inside its box
            assert np.all(labelled >= [x - 0.5, y - 0.5]) and np.all(
                labelled <= [x + bw - 0.5, y + bh - 0.5]
            )


def test_coco_visibility_rules(coco):
    _, data = coco
    counts = Counter()
    for split in ("train", "val"):
        sizes = {im["id"]: (im["width"], im["height"]) for im in data[split]["images"]}
        for a in data[split]["annotations"]:
            kp = np.array(a["keypoints"], dtype=float).reshape(17, 3)
            w, h = sizes[a["image_id"]]
            v = kp[:, 2]
            assert set(np.unique(v)) <= {0, 1, 2}
            assert np.all(kp[v == 0, :2] == 0)
            inside = (kp[:, 0] >= 0) & (kp[:, 0] <= w - 1) & (kp[:, 1] >= 0) & (kp[:, 1] <= h - 1)
            assert np.all(inside[v > 0])
            assert a["num_keypoints"] == int((v > 0).sum())
            counts.update(v.astype(int).tolist())
    assert counts[2] > counts[1] > 0


def test_coco_one_to_three_people_per_image(coco):
    _, data = coco
    for split in ("train", "val"):
        per_image = Counter(a["image_id"] for a in data[split]["annotations"])
        assert set(per_image) == {im["id"] for im in data[split]["images"]}
        assert set(per_image.values()) <= {1, 2, 3}
    assert len(set(per_image.values())) > 1


def test_coco_categories_equal_real_coco(coco):
    _, data = coco
    if REAL_COCO.exists():
        expected = json.loads(REAL_COCO.read_text())["categories"]
    else:
        expected = [real_coco.COCO_PERSON_CATEGORY]
    assert expected[0]["skeleton"][0] == [16, 14] and len(expected[0]["skeleton"]) == 19
    for split in ("train", "val"):
        assert data[split]["categories"] == expected


def test_coco_detection_file(coco):
    paths, data = coco
    dets = json.loads(paths["val_detections"].read_text())
    sizes = {im["id"]: (im["width"], im["height"]) for im in data["val"]["images"]}
    assert len(dets) >= len(data["val"]["annotations"])
    for d in dets:
        assert set(d) == {"bbox", "category_id", "image_id", "score"}
        assert d["category_id"] == 1 and d["image_id"] in sizes and 0 < d["score"] <= 1
        x, y, w, h = d["bbox"]
        assert x >= 0 and y >= 0 and w > 0 and h > 0
        assert x + w <= sizes[d["image_id"]][0] + 1e-6 and y + h <= sizes[d["image_id"]][1] + 1e-6
    assert sum(d["score"] >= 0.6 for d in dets) == len(data["val"]["annotations"])


def _tree(root: Path):
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.suffix in (".json", ".jpg")
    }


def test_coco_deterministic_by_seed(tmp_path):
    kw = dict(num_train_images=3, num_val_images=2, image_size=(96, 64), progress=False)
    a = _tree(syn.generate_synth_coco(tmp_path / "a", seed=7, **kw)["root"])
    b = _tree(syn.generate_synth_coco(tmp_path / "b", seed=7, **kw)["root"])
    c = _tree(syn.generate_synth_coco(tmp_path / "c", seed=8, **kw)["root"])
    assert a.keys() == b.keys() and len(a) == 3 + 2 + 3
    assert all(a[k] == b[k] for k in a)
    assert all(a[k] != c[k] for k in a if k.endswith(".jpg"))
    key = "annotations/person_keypoints_train.json"
    assert a[key] != c[key]


# ----------------------------------------------------------------------------------- SynthH36M
def _load_split(paths, split):
    npz = dict(np.load(paths[f"{split}_npz"]))
    rle = json.loads(paths[f"{split}_json"].read_text())
    return npz, rle


def test_h36m_layouts_written_with_real_keys(h36m):
    for key in ("images", "train_npz", "test_npz", "cameras", "train_json", "test_json"):
        assert h36m[key].exists(), key
    real = np.load(REAL_NPZ) if REAL_NPZ.exists() else None
    for split in ("train", "test"):
        npz, rle = _load_split(h36m, split)
        n = len(npz["imgname"])
        assert set(npz) == {"imgname", "center", "scale", "part", "S"}
        shapes = {"center": (n, 2), "scale": (n,), "part": (n, 17, 3), "S": (n, 17, 4)}
        for key, shape in shapes.items():
            assert npz[key].shape == shape and npz[key].dtype == np.float64
        assert npz["imgname"].dtype.kind == "U"
        if real is not None:
            assert set(real.files) == set(npz)
            for key in real.files:
                assert npz[key].dtype.kind == real[key].dtype.kind
                assert npz[key].shape[1:] == real[key].shape[1:]
        assert np.all(npz["part"][..., 2] == 1) and np.all(npz["S"][..., 3] == 1)
        assert [im["file_name"] for im in rle["images"]] == npz["imgname"].tolist()
        assert [a["image_id"] for a in rle["annotations"]] == [im["id"] for im in rle["images"]]
        for name in npz["imgname"]:
            subject, seq, fname = name.split("/")
            sub_, rest = seq.split("_", 1)
            action, cam = rest.rsplit(".", 1)
            assert sub_ == subject and action.rsplit("_", 1)[0] in real_h36m.H36M_ACTIONS
            assert fname.startswith(seq + "_") and cam in real_h36m.CAMERA_IDS
            img = cv2.imread(str(h36m["images"] / name))
            assert img.shape == (96, 96, 3)


def test_h36m_protocol_split_by_subject(h36m):
    for split, subjects in real_h36m.SPLITS.items():
        npz, rle = _load_split(h36m, split)
        seen = Counter(name.split("/")[0] for name in npz["imgname"])
        assert seen == {s: 2 * 4 for s in subjects}
        assert {f"S{im['subject']}" for im in rle["images"]} == set(subjects)


def test_h36m_center_scale_follow_mmpose(h36m):
    npz, _ = _load_split(h36m, "train")
    lo, hi = npz["part"][..., :2].min(1), npz["part"][..., :2].max(1)
    np.testing.assert_allclose(npz["center"], (lo + hi) / 2, atol=1e-9)
    np.testing.assert_allclose(npz["scale"], (hi - lo).max(1) * 1.2 / 200, atol=1e-9)


def _check_cameras_consistent(paths):
    with open(paths["cameras"], "rb") as f:
        cams = pickle.load(f)
    checked = 0
    for split in ("train", "test"):
        npz, rle = _load_split(paths, split)
        for i, (im, ann) in enumerate(zip(rle["images"], rle["annotations"])):
            cp = ann["cam_param"]
            R, t = np.array(cp["R"]), np.array(cp["t"])
            world = np.array(ann["keypoints_world"])
            assert world.shape == (17, 3) and R.shape == (3, 3) and t.shape == (3,)
            cam_json = (world - t) @ R.T  # official RLE: X_cam = R (X_world - t), mm
            np.testing.assert_allclose(cam_json, npz["S"][i, :, :3] * 1000, rtol=0, atol=1e-3)
            subject, seq, _ = im["file_name"].split("/")
            cam_id = seq.rsplit(".", 1)[1]
            cam = cams[(subject, cam_id)]
            # MMPose: X_cam = (X_world - T^T) @ R with T in metres
            cam_pkl = (world / 1000 - cam["T"].T) @ cam["R"]
            np.testing.assert_allclose(cam_pkl, npz["S"][i, :, :3], rtol=0, atol=1e-6)
            np.testing.assert_allclose(cam["R"], R.T, atol=1e-12)
            np.testing.assert_allclose(cam["T"].ravel() * 1000, t, atol=1e-9)
            for key in ("f", "c"):
                np.testing.assert_allclose(cam[key].ravel(), cp[key], atol=1e-12)
            S = npz["S"][i, :, :3]
            uv = S[:, :2] / S[:, 2:] * cam["f"].T + cam["c"].T
            np.testing.assert_allclose(uv, npz["part"][i, :, :2], rtol=0, atol=1e-3)
            assert np.all(cam["k"] == 0) and np.all(cam["p"] == 0)
            assert (cam["w"], cam["h"]) == (im["width"], im["height"])
            assert np.linalg.det(cam["R"]) == pytest.approx(1.0)
            checked += 1
    assert checked == sum(len(np.load(paths[f"{s}_npz"])["imgname"]) for s in ("train", "test"))


def test_h36m_camera_layouts_agree_and_project_to_part(h36m):
    _check_cameras_consistent(h36m)


def test_h36m_real_cameras_keep_r_and_t(h36m_real_cams):
    _check_cameras_consistent(h36m_real_cams)
    with open(REAL_CAMERAS, "rb") as f:
        real = pickle.load(f)
    with open(h36m_real_cams["cameras"], "rb") as f:
        written = pickle.load(f)
    assert set(written) == {k for k in real if k[0] in ("S1", "S9")}
    for key, cam in written.items():
        np.testing.assert_array_equal(cam["R"], real[key]["R"])
        np.testing.assert_array_equal(cam["T"], real[key]["T"])
        sx, sy = 128 / real[key]["w"], 128 / real[key]["h"]
        np.testing.assert_allclose(cam["f"].ravel(), real[key]["f"].ravel() * [sx, sy])
        assert cam["id"] == key[1]


def test_h36m_skeleton_proportions_and_chirality(h36m):
    npz, _ = _load_split(h36m, "train")
    S = npz["S"][..., :3] * 1000
    thigh = np.linalg.norm(S[:, 1] - S[:, 2], axis=1)
    shin = np.linalg.norm(S[:, 5] - S[:, 6], axis=1)
    assert np.all(np.abs(thigh / 442 - 1) < 0.25) and np.all(np.abs(shin / 454 - 1) < 0.25)
    assert np.all((S[:, :, 2] > 1000) & (S[:, :, 2] < 9000))
    # right-handed bodies (no mirror images): up x (right - left shoulder) points forward,
    # where the face looks
    styles = np.arange(len(body.STYLES)).repeat(20)
    pts = body.sample_bodies(np.random.default_rng(0), styles, body.BONE_MM[None])
    look = pts[:, body.NOSE] - pts[:, body.HEAD_C]
    forward = np.cross(pts[:, 8] - pts[:, 0], pts[:, 14] - pts[:, 11])
    assert np.all(np.einsum("ij,ij->i", look, forward) > 0)


def test_h36m_deterministic_by_seed(tmp_path):
    kw = dict(subjects=("S1", "S9"), frames_per_subject=1, image_size=(64, 64), progress=False)
    a = syn.generate_synth_h36m(tmp_path / "a", seed=2, **kw)
    b = syn.generate_synth_h36m(tmp_path / "b", seed=2, **kw)
    c = syn.generate_synth_h36m(tmp_path / "c", seed=3, **kw)
    ta, tb, tc = _tree(a["root"]), _tree(b["root"]), _tree(c["root"])
    assert ta.keys() == tb.keys() and all(ta[k] == tb[k] for k in ta)
    assert any(ta[k] != tc[k] for k in ta)
    for split in ("train", "test"):
        na, nb = np.load(a[f"{split}_npz"]), np.load(b[f"{split}_npz"])
        for key in na.files:
            np.testing.assert_array_equal(na[key], nb[key])
    assert a["cameras"].read_bytes() == b["cameras"].read_bytes()


# -------------------------------------------------------------------------- ensure / arguments
def test_ensure_generates_only_when_needed(tmp_path):
    root = tmp_path / "coco"
    kw = dict(num_train_images=2, num_val_images=1, image_size=(64, 48), seed=0, progress=False)
    paths = syn.ensure_synth_coco(root, **kw)
    marker = root / ".complete"
    assert json.loads(marker.read_text())["num_train_images"] == 2
    stamp = (marker.stat().st_mtime_ns, paths["train_json"].stat().st_mtime_ns)
    assert syn.ensure_synth_coco(root, **kw) == paths
    assert (marker.stat().st_mtime_ns, paths["train_json"].stat().st_mtime_ns) == stamp
    before = paths["train_json"].read_bytes()
    syn.ensure_synth_coco(root, **{**kw, "seed": 1})
    assert paths["train_json"].read_bytes() != before
    assert json.loads(marker.read_text())["seed"] == 1
    syn.ensure_synth_coco(root, **{**kw, "num_train_images": 3})
    assert len(list(paths["train_images"].iterdir())) == 3
    marker.unlink()
    syn.ensure_synth_coco(root, **{**kw, "num_train_images": 3})
    assert marker.exists()

    h_root = tmp_path / "h36m"
    hkw = dict(subjects=("S11",), frames_per_subject=1, image_size=(48, 48), progress=False)
    hp = syn.ensure_synth_h36m(h_root, **hkw)
    stamp = hp["test_json"].stat().st_mtime_ns
    syn.ensure_synth_h36m(h_root, **hkw)
    assert hp["test_json"].stat().st_mtime_ns == stamp
    syn.ensure_synth_h36m(h_root, **{**hkw, "frames_per_subject": 2})
    assert len(np.load(hp["test_npz"])["imgname"]) == 8


def test_generator_refuses_to_clear_foreign_folders(tmp_path):
    (tmp_path / "images" / "train").mkdir(parents=True)
    (tmp_path / "images" / "train" / "real.jpg").write_bytes(b"x")
    with pytest.raises(FileExistsError):
        syn.generate_synth_coco(tmp_path, 1, 1, progress=False)
    assert (tmp_path / "images" / "train" / "real.jpg").exists()


@pytest.mark.parametrize(
    "kwargs, exc, name",
    [
        (dict(num_train_images=0), ValueError, "num_train_images"),
        (dict(num_val_images=-1), ValueError, "num_val_images"),
        (dict(num_train_images=2.5), TypeError, "num_train_images"),
        (dict(image_size=(0, 64)), ValueError, "image_size"),
        (dict(image_size=(64,)), ValueError, "image_size"),
        (dict(seed="1"), TypeError, "seed"),
    ],
)
def test_coco_bad_arguments(tmp_path, kwargs, exc, name):
    with pytest.raises(exc, match=name):
        syn.generate_synth_coco(tmp_path / "x", **{"num_train_images": 1, **kwargs})
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "kwargs, exc, name",
    [
        (dict(subjects=("S2",)), ValueError, "subjects"),
        (dict(subjects=("S1", "S1")), ValueError, "subjects"),
        (dict(subjects=()), ValueError, "subjects"),
        (dict(subjects="S1"), TypeError, "subjects"),
        (dict(frames_per_subject=0), ValueError, "frames_per_subject"),
        (dict(image_size=(64, 16)), ValueError, "image_size"),
        (dict(cameras_pkl="/nonexistent/cameras.pkl"), ValueError, "cameras_pkl"),
    ],
)
def test_h36m_bad_arguments(tmp_path, kwargs, exc, name):
    with pytest.raises(exc, match=name):
        syn.generate_synth_h36m(tmp_path / "x", **{"frames_per_subject": 1, **kwargs})
    assert not (tmp_path / "x").exists()
    with pytest.raises(TypeError, match="bogus"):
        syn.ensure_synth_h36m(tmp_path / "x", bogus=1)


def test_cli_generates_then_skips_when_up_to_date(tmp_path, capsys):
    tool = Path(__file__).resolve().parents[1] / "tools" / "make_synthetic.py"
    args = "--train-images 2 --val-images 1 --image-size 64 48 --seed 4 --no-progress".split()
    argv = ["coco", "--out", str(tmp_path / "c"), *args]
    # one real run from outside the repo; the rest in-process to keep the test fast
    first = subprocess.run(
        [sys.executable, str(tool), *argv], capture_output=True, text=True, cwd=tmp_path
    )
    assert first.returncode == 0, first.stderr
    assert "3 images in" in first.stdout
    assert json.loads((tmp_path / "c" / ".complete").read_text())["seed"] == 4
    spec = importlib.util.spec_from_file_location("make_synthetic", tool)
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    assert cli.main(argv + ["--if-needed"]) == 0
    assert "up to date" in capsys.readouterr().out
    easy = ["--person-height", "0.7", "0.9", "--max-people", "1", "--clutter", "0", "--max-yaw",
            "30", "--roll", "0"]  # fmt: skip
    assert cli.main(argv + easy + ["--if-needed"]) == 0
    marker = json.loads((tmp_path / "c" / ".complete").read_text())
    assert marker["person_height"] == [0.7, 0.9] and marker["max_people"] == 1
    assert marker["clutter"] == 0 and marker["max_yaw"] == 30 and marker["roll"] == 0
    assert cli.main(argv + ["--max-yaw", "200"]) == 2
    assert "max_yaw" in capsys.readouterr().err
    assert cli.main(["h36m", "--out", str(tmp_path / "h"), "--subjects", "S3"]) == 2
    assert "subjects" in capsys.readouterr().err


# ------------------------------------------------------------------ SynthCOCO difficulty options
def test_coco_options_default_output_and_marker_unchanged(tmp_path):
    kw = dict(num_train_images=3, num_val_images=2, image_size=(96, 64), seed=4, progress=False)
    a = syn.generate_synth_coco(tmp_path / "a", **kw)["root"]
    b = syn.generate_synth_coco(
        tmp_path / "b", person_height=(0.35, 0.95), max_people=3, clutter=1.0, max_yaw=180,
        roll=1.0, **kw
    )["root"]  # fmt: skip
    assert _tree(a) == _tree(b)
    marker = json.loads((a / ".complete").read_text())
    assert marker == json.loads((b / ".complete").read_text())
    assert not {"person_height", "max_people", "clutter", "max_yaw", "roll"} & set(marker)


def test_coco_options_people_size_count_and_clutter(tmp_path):
    kw = dict(num_train_images=12, num_val_images=4, image_size=(128, 96), seed=2, progress=False)
    easy = syn.generate_synth_coco(
        tmp_path / "easy", person_height=(0.8, 0.9), max_people=1, clutter=0.0, **kw
    )
    small = syn.generate_synth_coco(tmp_path / "small", person_height=(0.3, 0.35), **kw)
    marker = json.loads((easy["root"] / ".complete").read_text())
    assert marker["person_height"] == [0.8, 0.9]
    assert marker["max_people"] == 1 and marker["clutter"] == 0.0

    def heights(paths):
        for split in ("train", "val"):
            data = json.loads(paths[f"{split}_json"].read_text())
            yield from (a["bbox"][3] for a in data["annotations"])

    for split in ("train", "val"):
        data = json.loads(easy[f"{split}_json"].read_text())
        per_image = Counter(a["image_id"] for a in data["annotations"])
        assert set(per_image.values()) == {1} and len(per_image) == len(data["images"])
        for a in data["annotations"]:
            assert len(a["keypoints"]) == 51 and a["area"] > 0
    assert np.median(list(heights(easy))) > 1.8 * np.median(list(heights(small)))
    # clutter 0: a plain textured background, so far fewer strong edges than with clutter
    plain = syn.generate_synth_coco(tmp_path / "plain", clutter=0.0, **kw)
    busy = syn.generate_synth_coco(tmp_path / "busy", clutter=3.0, **kw)

    def edges(paths):
        imgs = sorted(paths["train_images"].glob("*.jpg"))
        return np.mean([(cv2.Canny(cv2.imread(str(p), 0), 100, 200) > 0).mean() for p in imgs])

    assert edges(plain) < edges(busy)


def _facing_and_tilt(paths):
    """Per visible person: whether the person's left shoulder is on the image right (the
    person faces the camera) and the angle in degrees of the hip-centre -> shoulder-centre
    line from image-up."""
    facing, tilt = [], []
    for split in ("train", "val"):
        for a in json.loads(paths[f"{split}_json"].read_text())["annotations"]:
            kp = np.array(a["keypoints"], float).reshape(17, 3)
            if (kp[[5, 6, 11, 12], 2] == 0).any():
                continue
            facing.append(kp[5, 0] > kp[6, 0])
            up = kp[[5, 6], :2].mean(0) - kp[[11, 12], :2].mean(0)
            tilt.append(np.degrees(np.arctan2(up[0], -up[1])))
    return np.array(facing), np.abs(np.array(tilt))


def test_coco_options_yaw_and_roll(tmp_path):
    kw = dict(num_train_images=40, num_val_images=10, image_size=(96, 72), seed=5, progress=False)
    kw.update(max_people=1, clutter=0.0)
    front = syn.generate_synth_coco(tmp_path / "front", max_yaw=45.0, roll=0.0, **kw)
    marker = json.loads((front["root"] / ".complete").read_text())
    assert marker["max_yaw"] == 45.0 and marker["roll"] == 0.0
    facing, tilt = _facing_and_tilt(front)
    assert len(facing) > 30 and facing.all()  # always facing the camera: left is image-right
    anywhere = syn.generate_synth_coco(tmp_path / "any", **kw)
    anywhere_facing, anywhere_tilt = _facing_and_tilt(anywhere)
    assert 0.2 < anywhere_facing.mean() < 0.8  # the default draws every direction
    # upright: the torso leans (up to 40 degrees forward/sideways) but is never rolled past that
    assert tilt.max() < 45 and np.median(tilt) < np.median(anywhere_tilt)


def test_ensure_regenerates_when_options_change(tmp_path):
    root = tmp_path / "coco"
    kw = dict(num_train_images=2, num_val_images=1, image_size=(64, 48), seed=0, progress=False)
    paths = syn.ensure_synth_coco(root, max_people=1, **kw)
    stamp = paths["train_json"].stat().st_mtime_ns
    assert syn.ensure_synth_coco(root, max_people=1, **kw) == paths
    assert paths["train_json"].stat().st_mtime_ns == stamp
    syn.ensure_synth_coco(root, max_people=2, **kw)
    assert json.loads((root / ".complete").read_text())["max_people"] == 2
    syn.ensure_synth_coco(root, **kw)
    assert "max_people" not in json.loads((root / ".complete").read_text())


@pytest.mark.parametrize(
    "kwargs, exc, name",
    [
        (dict(person_height=(0.9, 0.5)), ValueError, "person_height"),
        (dict(person_height=(0.0, 0.5)), ValueError, "person_height"),
        (dict(person_height=0.5), ValueError, "person_height"),
        (dict(max_people=0), ValueError, "max_people"),
        (dict(max_people=1.5), TypeError, "max_people"),
        (dict(clutter=-0.1), ValueError, "clutter"),
        (dict(clutter="low"), TypeError, "clutter"),
        (dict(max_yaw=181), ValueError, "max_yaw"),
        (dict(max_yaw=float("nan")), ValueError, "max_yaw"),
        (dict(roll=-0.5), ValueError, "roll"),
        (dict(roll=True), TypeError, "roll"),
    ],
)
def test_coco_bad_difficulty_options(tmp_path, kwargs, exc, name):
    with pytest.raises(exc, match=name):
        syn.generate_synth_coco(tmp_path / "x", **{"num_train_images": 1, **kwargs})
    assert not (tmp_path / "x").exists()


def test_ensure_generates_once_when_processes_race(tmp_path):
    """Two processes asking for the same set at once (compare.py --jobs): one generates, the
    other waits on the lock and finds it complete; both see the same files."""
    code = (
        "import sys, json; from rle.datasets import synthetic as s; "
        "p = s.ensure_synth_coco(sys.argv[1], num_train_images=6, num_val_images=2, "
        "image_size=(64, 48), progress=False); print(p['train_json'].stat().st_mtime_ns)"
    )
    root = str(tmp_path / "coco")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, root],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[1],
        )  # fmt: skip
        for _ in range(2)
    ]
    stamps = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert stamps[0] == stamps[1] != ""  # generated once, read by both
    assert json.loads((tmp_path / "coco" / ".complete").read_text())["num_train_images"] == 6


# ------------------------------------------------------------------ byte identity, shared constants
CHECKSUMS = json.loads((Path(__file__).parent / "data" / "synthetic_checksums.json").read_text())


@pytest.mark.parametrize("case", sorted(CHECKSUMS["cases"]))
def test_generated_files_match_the_recorded_checksums(tmp_path, case):
    """Every file of three small sets is byte-identical to what the generator wrote before it
    became a package (``tests/data/synthetic_checksums.json``, same arguments and seed)."""
    kind, kwargs = CHECKSUMS["cases"][case]
    generate = {"coco": syn.generate_synth_coco, "h36m": syn.generate_synth_h36m}[kind]
    root = tmp_path / case
    generate(root, progress=False, **kwargs)
    got = {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
    assert got == CHECKSUMS["sha256"][case]


def test_the_real_datasets_constants_fit_the_body_model():
    assert real_coco.COCO_PERSON_CATEGORY["keypoints"] == list(real_coco.COCO_KEYPOINT_NAMES)
    assert len(real_h36m.H36M_ACTIONS) == 15
    assert len(body.ACTION_STYLE) == len(real_h36m.H36M_ACTIONS)
    assert real_h36m.H36M_SUBJECTS == real_h36m.SPLITS["train"] + real_h36m.SPLITS["test"]


def test_batched_projection_matches_row_by_row():
    """The writers project (n, 23, 3) batches with :mod:`rle.datasets.cameras`."""
    x = np.random.default_rng(0).uniform([-500, -500, 2000], [500, 500, 6000], (4, 5, 3))
    f, c = np.array([[1100.0], [1120.0]]), np.array([[30.0], [33.0]])
    flat = cameras.project(x.reshape(-1, 3), f, c).reshape(4, 5, 2)
    np.testing.assert_array_equal(cameras.project(x, f, c), flat)


def test_make_reports_generation_and_up_to_date(tmp_path):
    kw = dict(frames_per_subject=1, subjects=("S9",), image_size=(48, 48), progress=False)
    first = syn.make(syn.SYNTH_H36M, tmp_path / "h", if_needed=True, **kw)
    assert first.num_images == 4 and first.seconds is not None
    assert str(first).endswith("images/s)") and first.paths == syn.ensure_synth_h36m(
        tmp_path / "h", **kw
    )
    again = syn.make(syn.SYNTH_H36M, tmp_path / "h", if_needed=True, **kw)
    assert again.seconds is None and "is up to date (4 images)" in str(again)
    with pytest.raises(TypeError, match="bogus"):
        syn.make(syn.SYNTH_COCO, tmp_path / "c", bogus=1)
