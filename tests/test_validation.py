"""Bad input gets a clear error (or a counted skip) and never a silently wrong number: one test
per bad input of the loaders, transforms, metric and losses, and the numerics at the edges
(decoders on +inf / all -inf maps, the Gaussian basis on a 1x1 map, the RLE loss in float16 and
bfloat16)."""

import json
import logging
import pickle
from functools import reduce
from operator import getitem

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import heads.functional as HF
from heads import DSNTHead, SamplingArgmaxHead
from rle.datasets import CocoKeypointDataset, EncodeKeypoints, H36MDataset, LoadImage
from rle.datasets.coco import COCO_PERSON_CATEGORY, COCO_SIGMAS
from rle.datasets.synthetic import generate_synth_h36m
from rle.datasets.transforms import encoded_image_problem, image_file_problem
from rle.evaluation.metrics import CocoKeypointMetric, H36MMetric, PCKMetric
from rle.flow import RealNVP
from rle.losses import coordinate_loss, rle_loss
from tests.test_coco_data import TRAIN_PIPE

NAN, INF = float("nan"), float("inf")


@pytest.fixture
def warnings_logged():
    """The messages mmengine's logger warns with during the test."""
    from mmengine.logging import MMLogger

    records, handler = [], logging.Handler(logging.WARNING)
    handler.emit = lambda record: records.append(record.getMessage())
    MMLogger.get_current_instance().addHandler(handler)
    yield records
    MMLogger.get_current_instance().removeHandler(handler)


# -- COCO ------------------------------------------------------------------------------------------
def _image(path, w=48, h=64, fmt=".jpg", seed=0, params=()):
    img = np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
    data = cv2.imencode(fmt, img, list(params))[1].tobytes()
    path.write_bytes(data)
    return data


def _coco(tmp_path, change=None, dets=None, **kw):
    """Two images (ids 1, 2; 48 x 64) with one person each (annotations 7, 8; 5 labelled
    keypoints), changed by ``change``; ``dets`` makes it a test set on those detections."""
    (tmp_path / "img").mkdir(exist_ok=True)
    for i in (1, 2):
        _image(tmp_path / "img" / f"{i}.jpg", seed=i)
    ann = dict(image_id=1, category_id=1, bbox=[5, 5, 30, 50], area=1500, iscrowd=0)
    data = dict(
        images=[dict(id=i, file_name=f"{i}.jpg", width=48, height=64) for i in (1, 2)],
        annotations=[
            dict(ann, id=6 + i, image_id=i, num_keypoints=5,
                 keypoints=[20.0, 30.0, 2] * 5 + [0, 0, 0] * 12)
            for i in (1, 2)
        ],
        categories=[COCO_PERSON_CATEGORY],
    )  # fmt: skip
    if change:
        change(data)
    (tmp_path / "ann.json").write_text(json.dumps(data))
    if dets is not None:
        (tmp_path / "det.json").write_text(json.dumps(dets))
        kw.update(bbox_file=str(tmp_path / "det.json"), test_mode=True)
    return CocoKeypointDataset(
        ann_file=str(tmp_path / "ann.json"), data_prefix=dict(img=str(tmp_path / "img")), **kw
    )


def _set(path, value):
    """A change that sets ``data[path[0]]...[path[-1]] = value``."""
    return lambda data: reduce(getitem, path[:-1], data).__setitem__(path[-1], value)


def _truncate_image(tmp_path):
    path = tmp_path / "img" / "1.jpg"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _each(key, value):
    return lambda d: [a.__setitem__(key, value) for a in d["annotations"]]


ANN = ("annotations", 1)
KP = (*ANN, "keypoints")


@pytest.mark.parametrize(
    "change, match",
    [
        (_set((*ANN, "id"), 7), r"ann\.json: duplicate annotation id 7 \(annotations\[0\] and an"),
        (_set(("images", 1, "id"), 1), r"ann\.json: duplicate image id 1 \(images\[0\] and ima"),
        (lambda d: d["annotations"][1].pop("id"), r"annotations\[1\] \(image_id 2\): missing fie"),
        (_set((*KP, 0), "20"), r"annotation 8: field 'keypoints' must contain only numbers, got "
                               r"'20' \(str\) at position \[0\]"),
        (_set((*KP, 4), None), r"annotation 8: field 'keypoints' .* None \(NoneType\) at pos"),
        (_set(KP, "1 2 3"), r"annotation 8: field 'keypoints' must contain only numbers"),
        (_set((*KP, 0), NAN), r"annotation 8: field 'keypoints': keypoint 0 \(nose\) has \(x, y"),
        (_set((*KP, 4), INF), r"annotation 8: field 'keypoints': keypoint 1 \(left_eye\)"),
        (_set((*KP, 35), NAN), r"annotation 8: field 'keypoints': keypoint 11 .* v must be fin"),
        (_set((*ANN, "bbox"), [5, "x", 30, 50]), r"annotation 8: field 'bbox' must contain only "
                                                 r"numbers, got 'x' \(str\) at position \[1\]"),
        (_set((*ANN, "image_id"), [2]), r"annotations\[1\] \(id 8\): field 'image_id' must b"),
        (_each("bbox", [60, 5, 20, 30]), r"ann\.json: no samples to train on: the file has 2 ann"
                                         r"otations; removed: 2 with a box entirely outside"),
        (_each("iscrowd", 1), r"no samples to train on: .* 2 crowd or without labelled keypoints"),
        (_set(("annotations",), []), r"ann\.json: no samples to train on: the file has 0 annot"),
    ],
    ids=(
        "duplicate-annotation-id duplicate-image-id annotation-without-id string-keypoint "
        "none-keypoint keypoints-not-a-list nan-labelled-keypoint inf-labelled-keypoint "
        "nan-visibility string-bbox list-image-id every-box-outside only-crowd no-annotations"
    ).split(),
)  # fmt: skip
def test_coco_named_errors(tmp_path, change, match):
    with pytest.raises(ValueError, match=match):
        _coco(tmp_path, change)


def test_coco_nan_on_unlabelled_keypoint_is_zero_and_never_reaches_the_loss(tmp_path):
    ds = _coco(tmp_path, _set((*KP, 30), NAN), pipeline=TRAIN_PIPE)  # x of keypoint 10, v = 0
    assert ds.get_data_info(1)["keypoints"][10].tolist() == [0.0, 0.0]  # COCO's (0, 0, 0)
    sample = ds[1]["data_samples"]
    target, weight = sample.keypoint_labels[None], sample.keypoint_weights[None]
    assert torch.isfinite(target).all() and weight[0, 10] == 0
    pred = torch.zeros_like(target, requires_grad=True)
    loss = rle_loss(pred, torch.zeros_like(target), target, RealNVP(2), weight).loss
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(pred.grad).all()


def test_coco_box_outside_the_image_is_a_counted_skip(tmp_path, warnings_logged):
    ds = _coco(tmp_path, _set((*ANN, "bbox"), [60, 5, 20, 30]))  # x from 60, image 48 wide
    assert len(ds) == 1 and ds.num_skipped_outside == 1
    assert any("skipped 1 instances whose box lies entirely outside" in m for m in warnings_logged)
    # touching the image is inside (a box partly outside is normal)
    assert len(_coco(tmp_path, _set((*ANN, "bbox"), [40, 60, 20, 30]))) == 2


def test_coco_truncated_jpeg_raises_or_is_a_counted_skip(tmp_path, warnings_logged):
    with pytest.raises(ValueError, match=r"image 1: .*1\.jpg: truncated JPEG .*'skip' skips"):
        _coco(tmp_path, lambda d: _truncate_image(tmp_path))
    ds = _coco(tmp_path, lambda d: _truncate_image(tmp_path), missing_images="skip")
    assert len(ds) == 1 and ds.num_skipped_corrupt == 1 and ds.num_skipped_missing == 0
    assert any("1 instances whose image file is truncated" in m for m in warnings_logged)


DET = dict(image_id=1, category_id=1, bbox=[5, 5, 30, 50], score=0.9)


@pytest.mark.parametrize(
    "dets, kw, match",
    [
        ([dict(DET, score="0.9")], {}, r"det\.json: detection 0: field 'score' must contain only "
                                       r"numbers, got '0.9' \(str\)"),
        ([dict(DET, score=NAN)], {}, r"detection 0: field 'score' must be a finite number"),
        ([dict(DET, score=[0.9])], {}, r"detection 0: field 'score' must be a finite number"),
        ([DET, dict(DET, bbox=[5, "x", 30, 50])], {}, r"detection 1: field 'bbox' must contain"),
        ([dict(DET, category_id="1")], {}, r"detection 0: field 'category_id' must be an int"),
        ([dict(DET, image_id=[1])], {}, r"detection 0: field 'image_id' must be an int"),
        ([[1, 2, 3]], {}, r"detection 0: must be a json object, got list"),
        ([], {}, r"det\.json: no samples to evaluate: the file has 0 detections$"),
        ([dict(DET, score=0.2)], dict(bbox_score_thr=0.5),
         r"no samples to evaluate: the file has 1 detections; removed: 1 below bbox_score_thr"),
        ([DET], dict(det_category_ids=(2,)), r"1 of categories other than det_category_ids"),
        ([dict(DET, bbox=[5, 70, 30, 50])], {}, r"1 with a box entirely outside the image"),
    ],
    ids=(
        "string-score nan-score list-score string-bbox string-category list-image-id "
        "not-an-object empty-file all-below-threshold all-other-categories all-outside"
    ).split(),
)  # fmt: skip
def test_detection_file_named_errors(tmp_path, dets, kw, match):
    with pytest.raises(ValueError, match=match):
        _coco(tmp_path, dets=dets, **kw)


# -- images ----------------------------------------------------------------------------------------
def _load(path):
    return LoadImage()(dict(img_path=str(path), id=5))


@pytest.mark.parametrize(
    "fmt, cut, match",
    [
        (".jpg", 0.5, r"a\.jpg \(sample id 5\): truncated JPEG \(no end-of-image marker FF D9\)"),
        (".png", 0.5, r"a\.png \(sample id 5\): truncated PNG \(no IEND chunk\)"),
        (".jpg", 0.0, r"a\.jpg \(sample id 5\): the file is empty"),
        (None, None, r"a\.jpg \(sample id 5\): not a decodable image"),
    ],
    ids=["jpeg-cut-in-half", "png-cut-in-half", "empty-file", "not-an-image"],
)
def test_load_image_named_errors(tmp_path, fmt, cut, match):
    path = tmp_path / ("a.png" if fmt == ".png" else "a.jpg")
    if fmt is None:
        path.write_bytes(b"<html>not an image</html>")
    else:
        data = _image(path, 96, 128, fmt)
        path.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(ValueError, match=match):
        _load(path)
    with pytest.raises(FileNotFoundError, match=r"gone\.jpg: file not found"):
        _load(tmp_path / "gone.jpg")


@settings(max_examples=40, deadline=None)
@given(cut=st.floats(0.0, 0.9999), progressive=st.booleans(), png=st.booleans())
def test_every_cut_of_an_image_is_refused(tmp_path_factory, cut, progressive, png):
    path = tmp_path_factory.mktemp("cut") / ("a.png" if png else "a.jpg")
    params = () if png else (cv2.IMWRITE_JPEG_PROGRESSIVE, int(progressive))
    data = _image(path, 30, 40, ".png" if png else ".jpg", params=params)
    path.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(ValueError, match="cannot read image"):
        _load(path)
    if len(data[: int(len(data) * cut)]) > 8:  # long enough to be recognised as JPEG/PNG
        assert image_file_problem(str(path)).startswith(("truncated", "the file is empty"))


def test_complete_images_pass_the_checks(tmp_path):
    # trailing data after the image (motion photos) and NUL padding are accepted
    for name, extra in (("a.jpg", b""), ("b.jpg", b"\0" * 2000), ("c.jpg", b"MP4 trailer" * 200)):
        data = _image(tmp_path / name, seed=1)
        (tmp_path / name).write_bytes(data + extra)
        assert image_file_problem(str(tmp_path / name)) is None
        assert encoded_image_problem(data + extra) is None
        np.testing.assert_array_equal(
            _load(tmp_path / name)["img"], cv2.imread(str(tmp_path / "a.jpg"))
        )
    _image(tmp_path / "d.png", fmt=".png")
    assert image_file_problem(str(tmp_path / "d.png")) is None


# -- metric ----------------------------------------------------------------------------------------
def _metric(tmp_path, change=None):
    rng = np.random.default_rng(0)
    data = dict(images=[], annotations=[], categories=[COCO_PERSON_CATEGORY])
    for i in (1, 2, 3):
        data["images"].append(dict(id=i, file_name=f"{i}.jpg", width=100, height=100))
        kp = np.c_[rng.uniform(10, 90, (17, 2)), np.full(17, 2)].ravel().tolist()
        data["annotations"].append(
            dict(id=i, image_id=i, category_id=1, bbox=[5, 5, 90, 90], area=8100.0,
                 iscrowd=0, num_keypoints=17, keypoints=kp)
        )  # fmt: skip
    # the predictions are the ground truth before the change
    samples = [
        dict(id=a["id"], img_id=a["image_id"], bbox=np.array([5.0, 5, 95, 95]), bbox_score=1.0,
             pred_keypoints=np.asarray(a["keypoints"]).reshape(17, 3)[:, :2],
             pred_scores=np.ones(17))
        for a in data["annotations"]
    ]  # fmt: skip
    if change:
        change(data)
    (tmp_path / "val.json").write_text(json.dumps(data))
    metric = CocoKeypointMetric(ann_file=str(tmp_path / "val.json"))
    metric.dataset_meta = dict(sigmas=np.asarray(COCO_SIGMAS))
    metric.process({}, samples)
    return metric.compute_metrics(metric.results)


def test_metric_duplicate_annotation_ids(tmp_path):
    assert _metric(tmp_path)["AP"] == 1.0  # the ground truth as prediction
    with pytest.raises(ValueError, match=r"val\.json: duplicate annotation id 1 \(annotations"):
        _metric(tmp_path, _set(("annotations", 1, "id"), 1))


def test_metric_nan_on_unlabelled_ground_truth_keypoint(tmp_path):
    # the calibration's OKS masks unlabelled keypoints: NaN there counts as any other value
    kp = ("annotations", 0, "keypoints", slice(0, 3))
    with_nan, with_zero = (_metric(tmp_path, _set(kp, [v, v, 0])) for v in (NAN, 0.0))
    np.testing.assert_equal(with_nan, with_zero)


@pytest.mark.parametrize("cls", [CocoKeypointMetric, PCKMetric, H36MMetric])
def test_metrics_without_predictions(tmp_path, cls):
    metric = cls(ann_file=str(tmp_path / "val.json")) if cls is CocoKeypointMetric else cls()
    with pytest.raises(ValueError, match=f"{cls.__name__}: no predictions to evaluate"):
        metric.compute_metrics([])


# -- Human3.6M -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def h36m(tmp_path_factory):
    root = tmp_path_factory.mktemp("h36m")
    return generate_synth_h36m(
        root, subjects=["S1"], frames_per_subject=1, image_size=(64, 64), progress=False
    )


def _h36m(tmp_path, paths, change=None, change_cams=None, **kw):
    arrays = dict(np.load(paths["train_npz"]))
    if change:
        change(arrays)
    np.savez(tmp_path / "t.npz", **arrays)
    with open(paths["cameras"], "rb") as f:
        cams = pickle.load(f)  # the synthetic set's own file
    if change_cams:
        change_cams(cams[("S1", "54138969")])
    (tmp_path / "cams.pkl").write_bytes(pickle.dumps(cams))
    kw.setdefault("subjects", ["S1"])
    return H36MDataset(
        ann_file=str(tmp_path / "t.npz"), camera_param_file=str(tmp_path / "cams.pkl"), **kw
    )


def _put(key, index, value):
    return lambda a: a[key].__setitem__(index, value)


@pytest.mark.parametrize(
    "change, change_cams, match",
    [
        (_put("S", (0, 3, 1), NAN), None, r"t\.npz: record 0 \(S1/.*\): key 'S' has NaN or inf"
                                          r"inite values at joints \[3\]"),
        (_put("S", (1, 0, 3), INF), None, r"record 1 .*key 'S' has NaN or infinite .* \[0\]"),
        (_put("part", (0, 5, 0), INF), None, r"record 0 .*: key 'part' has NaN or infinite"),
        (_put("center", (2, 0), NAN), None, r"record 2 .*: key 'center' is not finite"),
        (_put("scale", 1, 0.0), None, r"record 1 .*: key 'scale' must be finite and > 0, got 0"),
        (lambda a: a.update(imgname=np.array(["frame_1.jpg"] * len(a["imgname"]))), None,
         r"t\.npz: record 0: field 'imgname': cannot parse .* 'frame_1\.jpg'"),
        (lambda a: a.update(S=a["S"].astype(str)), None, r"key 'S' must be numeric, got dtype"),
        (None, lambda c: c.pop("f"), r"cams\.pkl: camera \('S1', '54138969'\) \(used by record "
                                     r"0 of .*t\.npz\): missing key 'f'"),
        (None, lambda c: c.pop("c"), r"camera \('S1', '54138969'\) .*: missing key 'c'"),
        (None, lambda c: c.update(f=np.ones(3)), r"camera .*: key 'f' must have 2 values, got 3"),
        (None, lambda c: c.update(f=np.array([NAN, 1.0])), r"camera .* field 'f' has a NaN"),
        (None, lambda c: c.update(k="none"), r"camera .* field 'k' must contain only numbers"),
    ],
    ids=(
        "nan-in-S inf-in-S-visibility inf-in-part nan-center zero-scale unparseable-imgname "
        "string-S camera-without-f camera-without-c camera-f-wrong-size camera-f-nan "
        "camera-k-string"
    ).split(),
)  # fmt: skip
def test_h36m_npz_named_errors(tmp_path, h36m, change, change_cams, match):
    with pytest.raises(ValueError, match=match):
        _h36m(tmp_path, h36m, change, change_cams)


def test_h36m_no_sample_for_the_subjects(tmp_path, h36m):
    with pytest.raises(ValueError, match=r"t\.npz: no samples for subjects \['S9'\]: the file's "
                                         r"records are of subjects \['S1'\]"):  # fmt: skip
        _h36m(tmp_path, h36m, subjects=["S9"])
    with pytest.raises(ValueError, match=r"no samples for subjects \['S1'\]"):
        H36MDataset(ann_file=str(h36m["test_json"]), subjects=["S1"])


def test_h36m_check_images_refuses_truncated_files(tmp_path, h36m):
    ds = _h36m(tmp_path, h36m, data_prefix=dict(img=str(h36m["images"])), check_images=True)
    path = ds.get_data_info(0)["img_path"]
    data = open(path, "rb").read()
    try:
        open(path, "wb").write(data[:100])
        with pytest.raises(ValueError, match=r"record 0: image .*\.jpg: truncated JPEG"):
            _h36m(tmp_path, h36m, data_prefix=dict(img=str(h36m["images"])), check_images=True)
    finally:
        open(path, "wb").write(data)


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda a: a["keypoints_world"][2].__setitem__(1, NAN),
         r"annotation 1: field 'keypoints_world' has a NaN or infinite value at position \[2, 1"),
        (lambda a: a["keypoints_world"][0].__setitem__(0, "1.5"),
         r"field 'keypoints_world' must contain only numbers, got '1.5' \(str\) at position"),
        (lambda a: a["cam_param"].update(f=[NAN, 1.0]), r"field 'cam_param.f' has a NaN"),
        (lambda a: a["cam_param"].update(R=[[1, 0, 0]]), r"field 'cam_param.R' must have 9 val"),
        (lambda a: a.update(cam_param="camera"), r"field 'cam_param' must be a dict"),
        (lambda a: a.update(bbox=[0, 0, 10]), r"field 'bbox' must be \[x, y, w, h\]"),
        (lambda a: a.update(bbox=[0, 0, INF, 10]), r"field 'bbox' has a NaN or infinite value"),
    ],
    ids="nan-world string-world nan-f short-R camera-string short-bbox inf-bbox".split(),
)  # fmt: skip
def test_h36m_json_named_errors(tmp_path, h36m, change, match):
    raw = json.loads(h36m["train_json"].read_text())
    change(raw["annotations"][0])
    (tmp_path / "t.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match=match):
        H36MDataset(ann_file=str(tmp_path / "t.json"), subjects=["S1"])


# -- transforms and losses -------------------------------------------------------------------------
def _encode(points, visible, num_dims=2, **extra):
    return EncodeKeypoints(num_dims=num_dims)(
        dict(input_size=(10, 10), transformed_keypoints=np.asarray(points, float),
             keypoints_visible=np.asarray(visible, float), img_path="a.jpg", id=3, **extra)
    )  # fmt: skip


def test_encode_nan_on_a_labelled_joint_is_a_named_error():
    with pytest.raises(ValueError, match=r"a\.jpg \(sample id 3\): keypoints \[1\] are labelled"):
        _encode([[5, 5], [NAN, 5]], [2, 1])
    cam = np.array([[0, 0, 5000.0], [0, 0, NAN]])
    with pytest.raises(ValueError, match=r"keypoints \[1\] are labelled .* \(or depth\)"):
        _encode([[5, 5], [5, 5]], [2, 1], num_dims=3, keypoints_cam=cam)


def test_encode_nan_on_an_unlabelled_joint_gets_label_zero():
    out = _encode([[5, 5], [NAN, INF]], [2, 0])
    np.testing.assert_allclose(out["keypoint_labels"], [[0.05, 0.05], [0.0, 0.0]], atol=1e-7)
    assert out["keypoint_weights"].tolist() == [1.0, 0.0]
    cam = np.array([[0, 0, 5000.0], [0, 0, NAN]])
    out3 = _encode([[5, 5], [5, 5]], [2, 0], num_dims=3, keypoints_cam=cam)
    assert out3["keypoint_labels"][1].tolist() == [0.0, 0.0, 0.0]


def _with_bad_label(target, value, joint=(0, 1)):
    bad = target.clone()
    bad[joint[0], joint[1], 0] = value
    return bad


@settings(max_examples=25, deadline=None)
@given(
    value=st.sampled_from([NAN, INF, -INF, 1e30]),
    variant=st.sampled_from(["official", "mmpose", "paper"]),
    q=st.sampled_from(["laplace", "gaussian"]),
    dims=st.sampled_from([2, 3]),
    reduction=st.sampled_from(["batchmean", "mean", "sum", "none"]),
)
def test_rle_loss_ignores_any_label_of_a_weight0_joint(value, variant, q, dims, reduction):
    torch.manual_seed(0)
    flow, flow_2d = RealNVP(dims), (RealNVP(2) if dims == 3 else None)
    pred, logits = torch.randn(2, 3, dims) * 0.1, torch.randn(2, 3, dims)
    target = torch.zeros(2, 3, dims)
    weight = torch.ones(2, 3)
    weight[0, 1] = 0

    def run(t):
        p, lg = pred.clone().requires_grad_(), logits.clone().requires_grad_()
        out = rle_loss(p, lg, t, flow, weight, flow_2d=flow_2d, variant=variant, q=q,
                       reduction=reduction)  # fmt: skip
        params = list(flow.parameters())
        grads = torch.autograd.grad(out.loss.sum(), [p, lg, *params])
        return out.loss, grads

    loss, grads = run(target)
    bad_loss, bad_grads = run(_with_bad_label(target, value))
    torch.testing.assert_close(bad_loss, loss)
    for a, b in zip(bad_grads, grads):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("kind", ["l1", "l2", "smooth_l1", "euclidean"])
@pytest.mark.parametrize("samples", [False, True])
def test_coordinate_loss_ignores_any_label_of_a_weight0_joint(kind, samples):
    torch.manual_seed(1)
    target = torch.zeros(2, 3, 2)
    weight = torch.ones(2, 3, 2)
    weight[0, 1] = 0
    pred = torch.randn(2, 3, 4, 2) if samples else torch.randn(2, 3, 2)
    for value in (NAN, INF):
        p, q = pred.clone().requires_grad_(), pred.clone().requires_grad_()
        good = coordinate_loss(p, target, weight, kind=kind)
        bad = coordinate_loss(q, _with_bad_label(target, value), weight, kind=kind)
        good.backward()
        bad.backward()
        torch.testing.assert_close(bad, good)
        torch.testing.assert_close(q.grad, p.grad)


@pytest.mark.parametrize(
    "head",
    [
        dict(cls=DSNTHead, reg="js"),
        dict(cls=DSNTHead, reg="kl"),
        dict(cls=SamplingArgmaxHead, num_samples=4, basis="gaussian"),
    ],
    ids=["dsnt-js", "dsnt-kl", "sampling-argmax"],
)
def test_heatmap_head_losses_ignore_any_label_of_a_weight0_joint(head):
    kw = dict(head)
    cls = kw.pop("cls")
    torch.manual_seed(2)
    model = cls(in_channels=4, num_keypoints=3, deconv_channels=(), **kw)
    feats = torch.randn(2, 4, 6, 5)
    target, weight = torch.zeros(2, 3, 2), torch.ones(2, 3)
    weight[0, 1] = 0
    results = []
    for t in (target, _with_bad_label(target, NAN)):
        model.zero_grad()
        if cls is SamplingArgmaxHead:
            model.generator = torch.Generator().manual_seed(0)
        losses = model.loss(feats, t, weight)
        sum(v for k, v in losses.items() if "loss" in k).backward()
        results.append([*losses.values(), *(p.grad.clone() for p in model.parameters())])
    for a, b in zip(*results):
        torch.testing.assert_close(b, a)


# -- decoders at +-inf -----------------------------------------------------------------------------
def _bin_coords(shape, bins):
    """Normalised (x, y) of bins ``(row, col)`` of an ``(H, W)`` map."""
    h, w = shape
    return torch.tensor([[(c + 0.5) / w - 0.5, (r + 0.5) / h - 0.5] for r, c in bins])


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    count=st.integers(1, 4),
    beta=st.floats(0.5, 4.0),
    neg=st.booleans(),
)
def test_inf_bins_share_the_mass_with_finite_gradients(seed, count, beta, neg):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(1, 2, 4, 5, generator=gen) * 5
    flat = torch.randperm(20, generator=gen)[:count]
    bins = [(int(i) // 5, int(i) % 5) for i in flat]
    for r, c in bins:
        logits[0, 0, r, c] = INF
    if neg:
        logits[0, 0, 0, :] = torch.where(logits[0, 0, 0] == INF, INF, -INF)  # -inf bins too
    logits[0, 1] = -INF  # an all -inf map: uniform
    expected = torch.stack([_bin_coords((4, 5), bins).mean(0), torch.zeros(2)])[None]
    decoders = {
        "soft": lambda x: HF.soft_argmax(x, beta),
        "expect": lambda x: HF.heatmap_expectation(HF.spatial_softmax(x, beta)),
        "debiased": lambda x: HF.debiased_soft_argmax(x, beta),
        "eval": lambda x: HF.sampling_argmax(x, training=False, clip_integral=True),
    }
    for name, fn in decoders.items():
        x = logits.clone().requires_grad_()
        out = fn(x)
        out.sum().backward()
        torch.testing.assert_close(out, expected, atol=1e-6, rtol=0, msg=name)
        assert torch.isfinite(x.grad).all(), name
    maps = HF.spatial_softmax(logits, beta)
    torch.testing.assert_close(maps.sum((-2, -1)), torch.ones(1, 2))
    assert HF.heatmap_confidence(maps)[0].tolist() == pytest.approx([1 / count, 1 / 20])
    x = logits.clone().requires_grad_()
    samples = HF.sampling_argmax(x, 0.5, 6, "tri", generator=gen)
    samples.sum().backward()
    assert torch.isfinite(samples).all() and torch.isfinite(x.grad).all()


def test_overflowed_probability_map_and_nan_logits():
    probs = torch.zeros(1, 1, 4, 5)
    probs[0, 0, 1, 3] = probs[0, 0, 2, 0] = INF  # e.g. exp() overflowed in float16
    torch.testing.assert_close(HF.dsnt(probs)[0, 0], _bin_coords((4, 5), [(1, 3), (2, 0)]).mean(0))
    assert HF.heatmap_confidence(probs).item() == 0.5
    # NaN in, NaN out (never a plausible number)
    assert torch.isnan(HF.soft_argmax(torch.full((1, 1, 3, 3), NAN))).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("basis", ["gaussian", "triangular", "uniform"])
def test_sampling_on_a_one_bin_map_is_finite(dtype, basis):
    for seed in range(3):
        x = torch.zeros(2, 3, 1, 1, dtype=dtype, requires_grad=True)
        gen = torch.Generator().manual_seed(seed)
        out = HF.sampling_argmax(x, 1.0, 256, basis, generator=gen, gaussian_reweight=True)
        out.float().sum().backward()
        assert torch.isfinite(out).all() and torch.isfinite(x.grad).all()


def test_gaussian_basis_on_a_one_bin_map_is_the_jitter():
    # exp(-2 * 9^2) underflows: the weight of the only bin is still 1
    noise = dict(gumbel_u=torch.full((1, 1, 2, 1), 0.5), z_x=torch.tensor([[[[9.0], [-9.0]]]]))
    noise["z_y"] = noise["z_x"].clone()
    out = HF.sampling_argmax(torch.zeros(1, 1, 1, 1), 1.0, 2, "gaussian", noise=noise)
    torch.testing.assert_close(out, torch.tensor([[[[9.0, 9.0], [-9.0, -9.0]]]]))


# -- RLE loss in low precision ---------------------------------------------------------------------
# test_losses.py's float32 ranges (test_finite_for_extreme_sigma_logits), in low precision
PRECISIONS = ("float16", "bfloat16", "autocast-bfloat16", "autocast-float16")
CHOICES = dict(variant=("official", "mmpose", "paper"), q=("laplace", "gaussian"), dims=(2, 3))


@settings(max_examples=40, deadline=None)
@given(
    logit=st.floats(-200, 200),
    residual=st.floats(-1.0, 1.0),
    precision=st.sampled_from(PRECISIONS),
    **{name: st.sampled_from(values) for name, values in CHOICES.items()},
)
def test_rle_loss_finite_in_low_precision(logit, residual, variant, q, dims, precision):
    dtype = torch.bfloat16 if "bfloat16" in precision else torch.float16
    flow = RealNVP(dims, init="torch_default")
    pred = torch.full((1, 2, dims), residual, dtype=dtype, requires_grad=True)
    logits = torch.full((1, 2, dims), logit, dtype=dtype, requires_grad=True)
    with torch.autocast("cpu", dtype=dtype, enabled=precision.startswith("autocast")):
        out = rle_loss(pred, logits, torch.zeros(1, 2, dims), flow, variant=variant, q=q)
    out.loss.backward()
    assert out.loss.dtype == torch.float32 and torch.isfinite(out.loss)
    assert pred.grad.dtype == dtype
    assert torch.isfinite(pred.grad).all() and torch.isfinite(logits.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in flow.parameters())


def test_fuzz_script_finds_no_unclear_outcome(tmp_path):
    """benchmarks/fuzz_inputs.py (its table is in the README): every probe ends in a named
    error, a counted skip or a defined result."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "fuzz.md"
    subprocess.run(
        [sys.executable, str(root / "benchmarks" / "fuzz_inputs.py"), "--out", str(out)],
        check=True, capture_output=True, cwd=root, timeout=300,
    )  # fmt: skip
    count = out.read_text().strip().splitlines()[-1]
    assert count.endswith(" 0 unclear") and "UNCLEAR" not in out.read_text(), count
