"""COCO top-down dataset and transforms: real sample (skipped when absent), geometry round
trips, flip exactness, visibility rules and bad-input errors."""

import copy
import json

import cv2
import numpy as np
import pytest

from rle.datasets import (
    CocoKeypointDataset,
    EncodeKeypoints,
    GetBBoxCenterScale,
    RandomBBoxTransform,
    RandomFlip,
    TopdownAffine,
    flip_indices_from_names,
    get_warp_matrix,
    keypoints_to_image,
    warp_points,
)
from rle.datasets.coco import COCO_KEYPOINT_NAMES
from tests.conftest import SHARED

COCO_SAMPLE = SHARED / "data" / "coco_sample"
needs_coco = pytest.mark.skipif(not COCO_SAMPLE.is_dir(), reason="shared COCO sample absent")

TRAIN_PIPE = [
    dict(type="LoadImage"),
    dict(type="GetBBoxCenterScale"),
    dict(type="TopdownAffine", input_size=(192, 256)),
    dict(type="EncodeKeypoints"),
    dict(type="PackPoseInputs"),
]


def _coco(**kw):
    return CocoKeypointDataset(ann_file="test_coco.json", data_root=str(COCO_SAMPLE), **kw)


# -- real sample -----------------------------------------------------------------------------
@needs_coco
def test_real_sample_trainable_instances_and_meta():
    ds = _coco(pipeline=TRAIN_PIPE)
    assert len(ds) == 12
    meta = ds.metainfo
    assert meta["keypoint_names"] == list(COCO_KEYPOINT_NAMES)
    assert meta["flip_indices"] == [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]
    assert (15, 13) in meta["skeleton_links"]  # [16, 14] 1-based in the file
    np.testing.assert_allclose(meta["sigmas"][:3], [0.026, 0.025, 0.025])
    sample = ds[0]
    assert tuple(sample["inputs"].shape) == (3, 256, 192)
    labels = sample["data_samples"].keypoint_labels
    weights = sample["data_samples"].keypoint_weights
    assert labels.shape == (17, 2) and weights.shape == (17,)
    assert (labels[weights > 0].abs() <= 0.5).all()


@needs_coco
def test_real_sample_crop_shows_the_box():
    ds = _coco(
        pipeline=[
            dict(type="LoadImage"),
            dict(type="GetBBoxCenterScale", padding=1.0),
            dict(type="TopdownAffine", input_size=(100, 100)),
        ]
    )
    info = ds.get_data_info(0)
    out = ds[0]
    x1, y1, x2, y2 = info["bbox"]
    # the crop's box corners map to the crop's edges (index units -0.5 and w - 0.5) in the
    # padded dimension; the box centre maps to the crop centre
    mat = out["warp_mat"]
    centre = warp_points(np.array([[(x1 + x2) / 2 - 0.5, (y1 + y2) / 2 - 0.5]]), mat)
    np.testing.assert_allclose(centre, [[49.5, 49.5]], atol=1e-4)
    longer = max(x2 - x1, y2 - y1)
    corner = warp_points(np.array([[(x1 + x2) / 2 - 0.5 - longer / 2, 0]]), mat)[0, 0]
    assert corner == pytest.approx(-0.5, abs=1e-4)  # boxes are stored in float32


@needs_coco
def test_detection_boxes():
    ds = _coco(bbox_file="test_coco_det_AP_H_56.json", test_mode=True)
    assert len(ds) == 118
    thr = _coco(bbox_file="test_coco_det_AP_H_56.json", test_mode=True, bbox_score_thr=0.5)
    assert 0 < len(thr) < 118
    assert all(thr.get_data_info(i)["bbox_score"] >= 0.5 for i in range(len(thr)))
    # nothing left to evaluate: a named error (mmengine's sampler would divide by zero)
    with pytest.raises(ValueError, match="no samples to evaluate.*118 of categories other"):
        _coco(bbox_file="test_coco_det_AP_H_56.json", test_mode=True, det_category_ids=(2,))


# -- geometry --------------------------------------------------------------------------------
@pytest.mark.parametrize("rotation", [0.0, 23.0, -71.5])
def test_crop_roundtrip_to_image_coordinates(rotation):
    rng = np.random.default_rng(0)
    kpts = rng.uniform(0, 400, (17, 2))
    results = dict(
        keypoints=kpts,
        keypoints_visible=np.full(17, 2.0),
        img=np.zeros((480, 640, 3), np.uint8),
        img_shape=(480, 640),
        bbox=np.array([50.0, 40.0, 350.0, 420.0]),
    )
    results = GetBBoxCenterScale()(results)
    results["bbox_rotation"] = rotation
    results = TopdownAffine((192, 256))(results)
    results = EncodeKeypoints(outside="keep")(results)
    back = keypoints_to_image(
        results["keypoint_labels"],
        (192, 256),
        results["input_center"],
        results["input_scale"],
        rotation,
    )
    np.testing.assert_allclose(back, kpts, atol=1e-4)


def test_warp_inverse_is_exact():
    fwd = get_warp_matrix((101.3, 55.2), (80.0, 106.6), 33.0, (48, 64))
    inv = get_warp_matrix((101.3, 55.2), (80.0, 106.6), 33.0, (48, 64), inv=True)
    pts = np.random.default_rng(1).uniform(-50, 300, (100, 2))
    np.testing.assert_allclose(warp_points(warp_points(pts, fwd), inv), pts, atol=1e-9)


def test_flip_is_an_exact_mirror():
    rng = np.random.default_rng(2)
    img = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    names = list(COCO_KEYPOINT_NAMES)
    base = dict(
        img=img,
        img_shape=(120, 160),
        bbox=np.array([30.0, 10.0, 110.0, 115.0]),
        keypoints=rng.uniform(35, 105, (17, 2)),
        keypoints_visible=np.full(17, 2.0),
        flip_indices=flip_indices_from_names(names),
    )
    outs = []
    for prob in (0.0, 1.0):
        r = GetBBoxCenterScale()(copy.deepcopy(base))
        r = RandomFlip(prob)(r)
        r = TopdownAffine((48, 64))(r)
        outs.append(EncodeKeypoints(outside="keep")(r))
    plain, flipped = outs
    idx = base["flip_indices"]
    expected = plain["keypoint_labels"][idx] * np.array([-1.0, 1.0], dtype=np.float32)
    np.testing.assert_allclose(flipped["keypoint_labels"], expected, atol=1e-5)
    mirrored = plain["img"][:, ::-1].astype(int)
    assert np.abs(flipped["img"].astype(int) - mirrored).mean() < 0.5


def test_flip_indices_from_names():
    assert flip_indices_from_names(["nose", "left_eye", "right_eye"]) == [0, 2, 1]
    assert flip_indices_from_names(["pelvis", "r_hip", "l_hip"]) == [0, 2, 1]
    assert flip_indices_from_names(["hand_left", "hand_right", "x"]) == [1, 0, 2]


def test_encode_visibility_and_outside_rules():
    results = dict(
        input_size=(10, 10),
        transformed_keypoints=np.array([[5.0, 5.0], [-3.0, 5.0], [5.0, 5.0], [9.4, 0.0]]),
        keypoints_visible=np.array([2.0, 2.0, 0.0, 1.0]),
    )
    out = EncodeKeypoints()(dict(results))
    assert out["keypoint_weights"].tolist() == [1.0, 0.0, 0.0, 1.0]
    np.testing.assert_allclose(out["keypoint_labels"][0], [0.05, 0.05], atol=1e-7)
    keep = EncodeKeypoints(outside="keep")(dict(results))
    assert keep["keypoint_weights"].tolist() == [1.0, 1.0, 0.0, 1.0]
    cam = dict(
        results,
        keypoints_cam=np.array([[0, 0, 5000.0], [0, 0, 6500.0], [0, 0, 5000.0], [0, 0, 4000.0]]),
    )
    out3 = EncodeKeypoints(num_dims=3)(cam)
    np.testing.assert_allclose(out3["keypoint_labels"][:, 2], [0.0, 0.75, 0.0, -0.5])
    assert out3["keypoint_weights"].tolist() == [1.0, 0.0, 0.0, 1.0]


def test_augmentation_keeps_visibility_rules():
    rng = np.random.default_rng(3)
    for _ in range(20):
        r = dict(
            img=np.zeros((200, 200, 3), np.uint8),
            img_shape=(200, 200),
            bbox=np.array([40.0, 30.0, 160.0, 190.0]),
            keypoints=rng.uniform(40, 160, (17, 2)),
            keypoints_visible=rng.choice([0.0, 1.0, 2.0], 17),
            rng=rng,
            flip_indices=flip_indices_from_names(list(COCO_KEYPOINT_NAMES)),
        )
        r = GetBBoxCenterScale()(r)
        r = RandomFlip(0.5)(r)
        r = RandomBBoxTransform(rotate_factor=40)(r)
        r = TopdownAffine((48, 64))(r)
        r = EncodeKeypoints()(r)
        w = r["keypoint_weights"]
        assert (w[r["keypoints_visible"] == 0] == 0).all()
        assert (np.abs(r["keypoint_labels"][w > 0]) <= 0.5).all()


# -- bad input -------------------------------------------------------------------------------
def _write(tmp_path, data, name="ann.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def _valid(tmp_path, n_kpts=17):
    img_dir = tmp_path / "img"
    img_dir.mkdir(exist_ok=True)
    cv2.imwrite(str(img_dir / "a.jpg"), np.zeros((50, 60, 3), np.uint8))
    return dict(
        images=[dict(id=1, file_name="a.jpg", width=60, height=50)],
        annotations=[
            dict(
                id=7,
                image_id=1,
                category_id=1,
                bbox=[5, 5, 20, 30],
                area=600,
                iscrowd=0,
                num_keypoints=1,
                keypoints=[10, 10, 2] + [0, 0, 0] * 16,
            )
        ],
        categories=[
            dict(
                id=1, name="person", keypoints=list(COCO_KEYPOINT_NAMES)[:n_kpts], skeleton=[[1, 2]]
            )
        ],
    )


def _load(tmp_path, data, **kw):
    path = _write(tmp_path, data)
    return CocoKeypointDataset(
        ann_file=str(path), data_prefix=dict(img=str(tmp_path / "img")), **kw
    )


def test_valid_minimal_file_loads(tmp_path):
    assert len(_load(tmp_path, _valid(tmp_path))) == 1


def test_truncated_json(tmp_path):
    text = json.dumps(_valid(tmp_path))[:-20]
    with pytest.raises(ValueError, match=r"ann\.json: malformed or truncated json"):
        _load(tmp_path, text)


def test_missing_top_level_key(tmp_path):
    data = _valid(tmp_path)
    del data["categories"]
    with pytest.raises(ValueError, match="missing top-level key 'categories'"):
        _load(tmp_path, data)


def test_missing_annotation_field(tmp_path):
    data = _valid(tmp_path)
    del data["annotations"][0]["bbox"]
    with pytest.raises(ValueError, match="annotation 7: missing field 'bbox'"):
        _load(tmp_path, data)


def test_wrong_keypoint_length(tmp_path):
    data = _valid(tmp_path)
    data["annotations"][0]["keypoints"] = [10, 10, 2] * 16
    with pytest.raises(ValueError, match="annotation 7: field 'keypoints' must have 51 values"):
        _load(tmp_path, data)


def test_degenerate_box(tmp_path):
    data = _valid(tmp_path)
    data["annotations"][0]["bbox"] = [5, 5, 0, 30]
    with pytest.raises(ValueError, match=r"annotation 7: field 'bbox' must be \[x, y, w, h\]"):
        _load(tmp_path, data)


def test_missing_image_raises_or_skips_with_count(tmp_path):
    data = _valid(tmp_path)
    data["images"][0]["file_name"] = "gone.jpg"
    with pytest.raises(FileNotFoundError, match="image 1: file not found: .*gone.jpg"):
        _load(tmp_path, data)
    # a second, present image keeps the set non-empty (an empty one is an error)
    data["images"].append(dict(data["images"][0], id=2, file_name="a.jpg"))
    data["annotations"].append(dict(data["annotations"][0], id=8, image_id=2))
    ds = _load(tmp_path, data, missing_images="skip")
    assert len(ds) == 1 and ds.num_skipped_missing == 1


def test_unknown_sigmas(tmp_path):
    data = _valid(tmp_path, n_kpts=5)
    data["annotations"][0]["keypoints"] = [10, 10, 2] * 5
    with pytest.raises(ValueError, match="OKS sigmas are unknown"):
        _load(tmp_path, data)
    data["categories"][0]["sigmas"] = [0.05] * 5
    assert len(_load(tmp_path, data)) == 1


def test_unknown_image_id(tmp_path):
    data = _valid(tmp_path)
    data["annotations"][0]["image_id"] = 99
    with pytest.raises(ValueError, match="annotation 7: field 'image_id' 99"):
        _load(tmp_path, data)


def test_unreadable_image_at_load_time(tmp_path):
    data = _valid(tmp_path)
    (tmp_path / "img" / "a.jpg").write_bytes(b"not a jpeg")
    ds = _load(tmp_path, data, pipeline=[dict(type="LoadImage")])
    with pytest.raises(ValueError, match="cannot read image .*a.jpg.*not a decodable image"):
        ds[0]


def test_normalize_and_pack():
    from rle.datasets import NormalizeImage, PackPoseInputs

    img = np.random.default_rng(4).integers(0, 255, (6, 5, 3), dtype=np.uint8)
    out = NormalizeImage()(dict(img=img))["img"]
    mean = np.array([123.675, 116.28, 103.53], np.float32)
    std = np.array([58.395, 57.12, 57.375], np.float32)
    expected = ((img[..., ::-1] - mean) / std).transpose(2, 0, 1)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
    packed = PackPoseInputs()(
        dict(
            img=out,
            img_layout="CHW",
            keypoint_labels=np.zeros((17, 2), np.float32),
            keypoint_weights=np.ones(17, np.float32),
            id=3,
        )
    )
    assert tuple(packed["inputs"].shape) == (3, 6, 5)
    np.testing.assert_array_equal(packed["inputs"][1].numpy(), out[1])
    hwc = PackPoseInputs()(dict(img=img))["inputs"]
    assert tuple(hwc.shape) == (3, 6, 5) and hwc[2, 1, 1] == img[1, 1, 2]
    assert packed["data_samples"].id == 3
    assert tuple(packed["data_samples"].keypoint_labels.shape) == (17, 2)
    with pytest.raises(ValueError, match="mean and std"):
        NormalizeImage(mean=(1, 2))


def _infos(dataset):
    return [dataset.get_data_info(i) for i in range(len(dataset))]


def test_clip_bbox_clips_ground_truth_boxes_as_mmpose(tmp_path):
    data = _valid(tmp_path)
    data["annotations"][0]["bbox"] = [-4.5, 10.25, 70.0, 45.0]  # past every edge of 60 x 50
    empty = dict(data["annotations"][0], id=8, num_keypoints=0, keypoints=[0, 0, 0] * 17)
    data["annotations"].append(empty)
    as_given = _load(tmp_path, data, test_mode=True)
    assert [d["id"] for d in _infos(as_given)] == [7, 8]  # test mode keeps keypoint-less ones
    assert _infos(as_given)[0]["bbox"].tolist() == [-4.5, 10.25, 65.5, 55.25]
    published = _load(tmp_path, data, test_mode=True, clip_bbox=True, filter_empty=True)
    assert [d["id"] for d in _infos(published)] == [7]
    # clipped to [0, W - 1] x [0, H - 1], MMPose's rule
    assert _infos(published)[0]["bbox"].tolist() == [0.0, 10.25, 59.0, 49.0]
    inside = dict(data["annotations"][0], bbox=[5, 5, 20, 30])
    data["annotations"] = [inside]
    box = _infos(_load(tmp_path, data, clip_bbox=True))[0]["bbox"]
    assert box.tolist() == [5.0, 5.0, 25.0, 35.0]  # a box inside the image is unchanged


def test_detection_boxes_are_summed_in_float32_as_mmpose(tmp_path):
    data = _valid(tmp_path)
    data["images"][0].update(width=640, height=480)
    # x + w rounds differently in float32 and in float64-then-float32
    x, w = 382.177, 81.666
    dets = [dict(image_id=1, category_id=1, bbox=[x, 1.0, w, 2.0], score=0.9)]
    _write(tmp_path, dets, "det.json")
    ds = _load(tmp_path, data, test_mode=True, bbox_file=str(tmp_path / "det.json"))
    x2 = _infos(ds)[0]["bbox"][2]
    assert np.float32(x) + np.float32(w) != np.float32(x + w)  # the case is a real one
    assert x2 == np.float32(x) + np.float32(w)
