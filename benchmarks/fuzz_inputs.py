"""Probe the library with bad inputs and extreme numbers; print a table of what each one gives.

Every case builds one bad input in its own temporary folder (a hand-written COCO json, a
synthetic Human3.6M npz with one value changed, a truncated JPEG, a tensor with NaN or inf) and
feeds it to the library. The outcome is one of:

* ``named error: <first line>``: an exception whose message names what the case expects (the
  file, the record and the field);
* ``counted skip: <warning>``: the bad record was left out, counted and warned about;
* ``defined: <what>``: the documented, finite result (decoders on ``+inf`` maps, a loss with
  a NaN label on a joint of weight 0, float16 gradients);
* ``UNCLEAR: <what>``: an exception without those names, or a silently wrong, NaN or partial
  result.

Adding a case: write ``def my_case(tmp: Path) -> str`` that builds its input under ``tmp`` and
returns :func:`defined` / :func:`skipped` / :func:`unclear` (or raises), and append
``Case("what it probes", my_case, ("fragments", "the error must name"))`` to :data:`CASES`.

Run from the repository root: ``python benchmarks/fuzz_inputs.py [--out table.md]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import pickle
import tempfile
import warnings
from pathlib import Path
from typing import Callable, List, NamedTuple, Sequence

import cv2
import numpy as np
import torch

from rle.datasets import CocoKeypointDataset, EncodeKeypoints, H36MDataset, LoadImage
from rle.datasets.coco import COCO_PERSON_CATEGORY, COCO_SIGMAS
from rle.datasets.synthetic import generate_synth_h36m
from rle.flow import RealNVP
from rle.losses import coordinate_loss, rle_loss

from common import table


class Case(NamedTuple):
    """One probe: ``run(tmp)`` returns an outcome or raises; a raised error counts as named when
    its message contains every fragment of ``names``."""

    name: str
    run: Callable[[Path], str]
    names: Sequence[str] = ()


def defined(what: str) -> str:
    return f"defined: {what}"


def skipped(what: str) -> str:
    return f"counted skip: {what}"


def unclear(what: str) -> str:
    return f"UNCLEAR: {what}"


# -- builders ------------------------------------------------------------------------------------
def _jpeg(path: Path, w: int = 48, h: int = 64, seed: int = 0) -> bytes:
    img = np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
    data = cv2.imencode(".jpg", img)[1].tobytes()
    path.write_bytes(data)
    return data


def _coco(tmp: Path, change: Callable[[dict], None] = lambda d: None, **kw) -> CocoKeypointDataset:
    """A two-person COCO set (images 1 and 2, annotations 7 and 8), changed by ``change``."""
    (tmp / "img").mkdir(exist_ok=True)
    kpts = [20.0, 30.0, 2] * 5 + [0, 0, 0] * 12
    data = dict(
        images=[dict(id=i, file_name=f"{i}.jpg", width=48, height=64) for i in (1, 2)],
        annotations=[
            dict(id=6 + i, image_id=i, category_id=1, bbox=[5, 5, 30, 50], area=1500,
                 iscrowd=0, num_keypoints=5, keypoints=list(kpts))
            for i in (1, 2)
        ],
        categories=[COCO_PERSON_CATEGORY],
    )  # fmt: skip
    for img in data["images"]:
        _jpeg(tmp / "img" / img["file_name"], seed=img["id"])
    change(data)
    (tmp / "ann.json").write_text(json.dumps(data))
    return CocoKeypointDataset(
        ann_file=str(tmp / "ann.json"), data_prefix=dict(img=str(tmp / "img")), **kw
    )


def _detections(tmp: Path, dets: list, **kw) -> CocoKeypointDataset:
    (tmp / "det.json").write_text(json.dumps(dets))
    return _coco(tmp, bbox_file=str(tmp / "det.json"), test_mode=True, **kw)


def _through_sampler(ds, shuffle: bool) -> str:
    """What mmengine's loader does with a dataset that loaded without complaint."""
    from mmengine.dataset import DefaultSampler

    list(DefaultSampler(ds, shuffle=shuffle))
    return _accepted(ds)


def _h36m_files(tmp: Path) -> dict:
    return generate_synth_h36m(
        tmp / "h36m", subjects=["S1"], frames_per_subject=1, image_size=(64, 64), progress=False
    )


def _h36m(tmp: Path, change=None, change_cams=None, **kw) -> H36MDataset:
    paths = _h36m_files(tmp)
    npz = dict(np.load(paths["train_npz"]))
    if change:
        change(npz)
    np.savez(tmp / "train.npz", **npz)
    with open(paths["cameras"], "rb") as f:
        cams = pickle.load(f)  # our own synthetic file
    if change_cams:
        change_cams(cams)
    (tmp / "cameras.pkl").write_bytes(pickle.dumps(cams))
    kw.setdefault("subjects", ["S1"])
    return H36MDataset(
        ann_file=str(tmp / "train.npz"), camera_param_file=str(tmp / "cameras.pkl"), **kw
    )


def _finite(*tensors) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in tensors)


# -- COCO loader -----------------------------------------------------------------------------------
def _accepted(ds) -> str:
    return unclear(f"accepted silently ({len(ds)} samples)")


def duplicate_ids(tmp):
    ds = _coco(tmp, lambda d: d["annotations"][1].update(id=7))
    return unclear(f"accepted silently (ids {[ds.get_data_info(i)['id'] for i in range(len(ds))]})")


def missing_id(tmp):
    ds = _coco(tmp, lambda d: d["annotations"][1].pop("id"))
    return unclear(f"accepted silently (ids {[ds.get_data_info(i)['id'] for i in range(len(ds))]})")


def string_keypoints(tmp):
    ds = _coco(tmp, lambda d: d["annotations"][1]["keypoints"].__setitem__(0, "20"))
    return unclear(f"accepted silently (x = {ds.get_data_info(1)['keypoints'][0, 0]})")


def nan_labelled(tmp):
    ds = _coco(tmp, lambda d: d["annotations"][1]["keypoints"].__setitem__(0, float("nan")))
    return unclear(f"accepted silently (x = {ds.get_data_info(1)['keypoints'][0, 0]})")


# the training pipeline, without augmentation
PIPELINE = [dict(type=name) for name in ("LoadImage", "GetBBoxCenterScale")] + [
    dict(type="TopdownAffine", input_size=(48, 64)),
    *(dict(type=name) for name in ("EncodeKeypoints", "PackPoseInputs")),
]


def nan_unlabelled(tmp):
    # keypoint 10 has v = 0: a NaN there must not reach the loss (0 * NaN is NaN)
    ds = _coco(tmp, lambda d: d["annotations"][0]["keypoints"].__setitem__(30, float("nan")),
               pipeline=PIPELINE)  # fmt: skip
    s = ds[0]["data_samples"]
    target, weight = s.keypoint_labels[None], s.keypoint_weights[None]
    pred = torch.zeros_like(target, requires_grad=True)
    logits = torch.zeros_like(target, requires_grad=True)
    loss = rle_loss(pred, logits, target, RealNVP(2), weight).loss
    loss = loss + coordinate_loss(pred, target, weight)
    loss.backward()
    if not _finite(loss, pred.grad, logits.grad):
        return unclear(f"NaN loss {loss.item()} (label {target[0, 10].tolist()})")
    return defined(f"label {target[0, 10].tolist()}, weight 0, finite loss and gradients")


def _outside(d):
    d["annotations"][1]["bbox"] = [60, 5, 20, 30]  # x from 60 in a 48 px wide image


def one_box_outside(tmp):
    with _captured() as logs:
        ds = _coco(tmp, _outside)
    return skipped(logs[0].split(": ", 1)[1]) if len(ds) == 1 and logs else _accepted(ds)


def every_box_outside(tmp):
    ds = _coco(tmp, lambda d: [a.update(bbox=[60, 5, 20, 30]) for a in d["annotations"]])
    return _through_sampler(ds, shuffle=True)


def only_crowd(tmp):
    ds = _coco(tmp, lambda d: [a.update(iscrowd=1) for a in d["annotations"]])
    return _through_sampler(ds, shuffle=True)


def det_string_score(tmp):
    return _accepted(_detections(tmp, [dict(image_id=1, bbox=[5, 5, 30, 50], score="0.9")]))


def det_string_bbox(tmp):
    return _accepted(_detections(tmp, [dict(image_id=1, bbox=[5, "x", 30, 50], score=0.9)]))


def det_empty(tmp):
    return _through_sampler(_detections(tmp, []), shuffle=False)


def det_below_threshold(tmp):
    det = dict(image_id=1, category_id=1, bbox=[5, 5, 30, 50], score=0.2)
    return _through_sampler(_detections(tmp, [det], bbox_score_thr=0.5), shuffle=False)


def _truncate(tmp):
    path = tmp / "img" / "1.jpg"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def truncated_raise(tmp):
    return _accepted(_coco(tmp, lambda d: _truncate(tmp)))


def truncated_skip(tmp):
    with _captured() as logs:
        ds = _coco(tmp, lambda d: _truncate(tmp), missing_images="skip")
    return skipped(logs[0].split(": ", 1)[1]) if len(ds) == 1 and logs else _accepted(ds)


def _load_image(data: bytes, tmp: Path, name: str = "a.jpg"):
    (tmp / name).write_bytes(data)
    img = LoadImage()(dict(img_path=str(tmp / name)))["img"]
    grey = float((img == 128).all(-1).mean())
    return unclear(f"decoded {img.shape[:2]}, {grey:.0%} grey padding")


def load_truncated_jpeg(tmp):
    data = _jpeg(tmp / "full.jpg", 96, 128)
    return _load_image(data[: len(data) // 2], tmp)


def load_truncated_png(tmp):
    img = np.random.default_rng(0).integers(0, 255, (64, 48, 3), dtype=np.uint8)
    data = cv2.imencode(".png", img)[1].tobytes()
    return _load_image(data[: len(data) // 2], tmp, "a.png")


def load_not_an_image(tmp):
    return _load_image(b"<html>not an image</html>", tmp)


# -- metric ----------------------------------------------------------------------------------------
def _metric(tmp: Path, change: Callable[[dict], None]):
    from rle.evaluation.metrics import CocoKeypointMetric

    rng = np.random.default_rng(0)
    data = dict(images=[], annotations=[], categories=[COCO_PERSON_CATEGORY])
    for i in range(1, 5):
        kp = np.c_[rng.uniform(10, 90, (17, 2)), np.full(17, 2)]
        data["images"].append(dict(id=i, file_name=f"{i}.jpg", width=100, height=100))
        data["annotations"].append(
            dict(id=i, image_id=i, category_id=1, bbox=[5, 5, 90, 90], area=8100.0, iscrowd=0,
                 num_keypoints=17, keypoints=kp.ravel().tolist())
        )  # fmt: skip
    change(data)
    (tmp / "val.json").write_text(json.dumps(data))
    metric = CocoKeypointMetric(ann_file=str(tmp / "val.json"))
    metric.dataset_meta = dict(sigmas=np.asarray(COCO_SIGMAS))
    # predictions = the ground truth: AP must be 1
    samples = [
        dict(id=a["id"], img_id=a["image_id"], bbox=np.array([5, 5, 95, 95.0]),
             pred_keypoints=np.asarray(a["keypoints"]).reshape(17, 3)[:, :2],
             pred_scores=np.ones(17), bbox_score=1.0)
        for a in data["annotations"]
    ]  # fmt: skip
    metric.process({}, samples)
    return metric.compute_metrics(metric.results)


def metric_duplicate_ids(tmp):
    ap = _metric(tmp, lambda d: d["annotations"][1].update(id=1))["AP"]
    return defined(f"AP {ap:.3f}") if ap == 1.0 else unclear(f"ground truth scores AP {ap:.3f}")


def metric_empty(tmp):
    from rle.evaluation.metrics import CocoKeypointMetric

    _metric(tmp, lambda d: None)
    metric = CocoKeypointMetric(ann_file=str(tmp / "val.json"))
    metric.dataset_meta = dict(sigmas=np.asarray(COCO_SIGMAS))  # all it lacks is predictions
    return unclear(f"returned {metric.compute_metrics([])}")


# -- Human3.6M -------------------------------------------------------------------------------------
def h36m_nan_s(tmp):
    ds = _h36m(tmp, lambda a: a["S"].__setitem__((0, 3, 1), np.nan))
    return unclear(f"accepted silently (keypoints_cam {ds.get_data_info(0)['keypoints_cam'][3]})")


def h36m_inf_part(tmp):
    ds = _h36m(tmp, lambda a: a["part"].__setitem__((0, 5, 0), np.inf))
    return unclear(f"accepted silently (keypoints {ds.get_data_info(0)['keypoints'][5]})")


def h36m_bad_name(tmp):
    names = lambda a: a.update(imgname=np.array(["frame_0001.jpg"] * len(a["imgname"])))  # noqa: E731
    return _accepted(_h36m(tmp, names))


def h36m_camera_without_f(tmp):
    return _accepted(_h36m(tmp, change_cams=lambda c: [cam.pop("f") for cam in c.values()]))


def h36m_json_nan(tmp):
    raw = json.loads(Path(_h36m_files(tmp)["train_json"]).read_text())
    raw["annotations"][0]["keypoints_world"][2][1] = float("nan")
    (tmp / "train.json").write_text(json.dumps(raw))
    ds = H36MDataset(ann_file=str(tmp / "train.json"), subjects=["S1"])
    return unclear(f"accepted silently (keypoints {ds.get_data_info(0)['keypoints'][2]})")


def h36m_no_subject(tmp):
    return _through_sampler(_h36m(tmp, subjects=["S9", "S11"]), shuffle=True)


# -- transforms and losses -------------------------------------------------------------------------
def encode_nan_labelled(tmp):
    out = EncodeKeypoints()(
        dict(input_size=(10, 10), transformed_keypoints=np.array([[5.0, np.nan], [5.0, 5.0]]),
             keypoints_visible=np.array([2.0, 2.0]), img_path="a.jpg", id=3)
    )  # fmt: skip
    return unclear(f"labels {out['keypoint_labels'].tolist()}, weights silently 0")


def _nan_target(d=2):
    target = torch.zeros(2, 3, d)
    target[0, 1, 0] = float("nan")
    weight = torch.ones(2, 3)
    weight[0, 1] = 0
    return target, weight


def rle_nan_weight0(tmp):
    target, weight = _nan_target()
    pred = torch.zeros_like(target, requires_grad=True)
    logits = torch.zeros_like(target, requires_grad=True)
    flow = RealNVP(2)
    loss = rle_loss(pred, logits, target, flow, weight).loss
    loss.backward()
    grads = [pred.grad, logits.grad, *(p.grad for p in flow.parameters())]
    if _finite(loss, *grads):
        return defined(f"loss {loss.item():.4f}, finite gradients (flow included)")
    return unclear(f"loss {loss.item()}, finite gradients: {_finite(*grads)}")


def coord_inf_weight0(tmp):
    target, weight = _nan_target()
    target[0, 1, 0] = float("inf")
    pred = torch.zeros(2, 3, 4, 2, requires_grad=True)  # (B, K, S, D) samples
    out = {kind: coordinate_loss(pred, target, weight, kind=kind) for kind in ("l1", "euclidean")}
    sum(out.values()).backward()
    if _finite(*out.values(), pred.grad):
        return defined("l1 and euclidean losses and gradients finite")
    return unclear(f"losses {[v.item() for v in out.values()]}")


def dsnt_nan_weight0(tmp):
    from heads import DSNTHead

    head = DSNTHead(in_channels=4, num_keypoints=3, deconv_channels=())
    feats = torch.randn(2, 4, 6, 5)
    target, weight = _nan_target()
    losses = head.loss(feats, target, weight)
    sum(losses.values()).backward()
    grads = [p.grad for p in head.parameters() if p.grad is not None]
    if _finite(*losses.values(), *grads):
        return defined("euclidean and JS terms and gradients finite")
    return unclear(f"losses {[round(v.item(), 4) for v in losses.values()]}")


# -- decoders --------------------------------------------------------------------------------------
def _special_maps():
    logits = torch.randn(1, 2, 4, 5, generator=torch.Generator().manual_seed(0))
    logits[0, 0, 1, 3] = logits[0, 0, 2, 0] = float("inf")  # two +inf bins
    logits[0, 1] = float("-inf")  # an all -inf map
    # +inf bins at x = (3 + 0.5) / 5 - 0.5 and (0 + 0.5) / 5 - 0.5, y = (1|2 + 0.5) / 4 - 0.5
    expected = torch.tensor([[[-0.1, 0.0], [0.0, 0.0]]])
    return logits, expected


def _decoder_case(fn, expected_ok=True):
    logits, expected = _special_maps()
    x = logits.clone().requires_grad_()
    out = fn(x)
    out.sum().backward()
    out, grad = out.detach(), x.grad
    if not _finite(out, grad):
        return unclear(f"coords {out.flatten().tolist()}, gradient finite: {_finite(grad)}")
    if expected_ok and not torch.allclose(out, expected, atol=1e-6):
        return unclear(f"finite but wrong coords {out.flatten().tolist()}")
    return defined("+inf bins share the mass, all -inf is uniform; finite gradients")


def soft_argmax_inf(tmp):
    from heads.functional import soft_argmax

    return _decoder_case(soft_argmax)


def debiased_inf(tmp):
    from heads.functional import debiased_soft_argmax

    return _decoder_case(lambda x: debiased_soft_argmax(x, 2.0))


def dsnt_inf(tmp):
    from heads.functional import dsnt, spatial_softmax

    return _decoder_case(lambda x: dsnt(spatial_softmax(x)))


def expectation_overflowed(tmp):
    from heads.functional import heatmap_confidence, heatmap_expectation

    logits, expected = _special_maps()
    maps = logits[:, :1].exp()  # an unnormalised map whose exp overflowed
    coords, conf = heatmap_expectation(maps), heatmap_confidence(maps)
    if _finite(coords) and torch.allclose(coords, expected[:, :1]) and conf.item() == 0.5:
        return defined("mass split among the +inf entries, confidence 0.5")
    return unclear(f"coords {coords.flatten().tolist()}, confidence {conf.flatten().tolist()}")


def sampling_inf(tmp):
    from heads.functional import sampling_argmax

    gen = torch.Generator().manual_seed(0)
    return _decoder_case(
        lambda x: sampling_argmax(x, 0.5, 8, "tri", generator=gen).mean(2), expected_ok=False
    )


def gaussian_1x1(tmp):
    from heads.functional import sampling_argmax

    bad = []
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        x = torch.zeros(2, 3, 1, 1, dtype=dtype, requires_grad=True)
        gen = torch.Generator().manual_seed(0)
        out = sampling_argmax(x, 1.0, 64, "gaussian", generator=gen)
        out.float().sum().backward()
        if not _finite(out, x.grad):
            bad.append(str(dtype).split(".")[1])
    return unclear(f"NaN samples in {bad}") if bad else defined("finite in fp32, fp16, bf16")


def rle_low_precision(tmp):
    flow = RealNVP(2)
    bad = []
    for dtype, autocast in ((torch.float16, False), (torch.bfloat16, True)):
        for logit in (-200.0, -30.0, -11.0, -8.0, 0.0, 30.0, 200.0):
            pred = torch.full((1, 2, 2), 0.3, dtype=dtype, requires_grad=True)
            logits = torch.full((1, 2, 2), logit, dtype=dtype, requires_grad=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                loss = rle_loss(pred, logits, torch.zeros(1, 2, 2), flow).loss
            loss.backward()
            if not _finite(loss, pred.grad, logits.grad):
                bad.append(f"{str(dtype).split('.')[1]} logit {logit:g}")
    if bad:
        return unclear(f"inf/NaN gradients for {', '.join(bad)}")
    return defined("loss and gradients finite for logits -200..200 (fp16; bf16 autocast)")


# -- files that could run code, checkpoints after a crash -------------------------------------
class _Payload:
    """Unpickling calls ``os.system``: what a crafted checkpoint does with plain torch.load."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


class _Escalation:
    """``getattr(<an admitted function>, '__globals__')``: the walk towards ``os.system``."""

    def __reduce__(self):
        return getattr, (torch._utils._rebuild_tensor_v2, "__globals__")


def _refused(tmp: Path, obj, load) -> str:
    path, marker = tmp / "crafted.pth", tmp / "MARKER"
    torch.save({"state_dict": {}, "x": obj(marker) if obj is _Payload else obj()}, path)
    try:
        load(path)
    finally:
        if marker.exists():
            return unclear("the payload ran")  # noqa: B012 - a ran payload is the outcome
    return unclear("the crafted file loaded")


def crafted_checkpoint(tmp):
    from rle.serialization import load_checkpoint_file

    return _refused(tmp, _Payload, load_checkpoint_file)


def getattr_escalation(tmp):
    from rle.serialization import load_checkpoint_file

    return _refused(tmp, _Escalation, load_checkpoint_file)


def crafted_cameras(tmp):
    marker = tmp / "MARKER"
    (tmp / "cameras.pkl").write_bytes(pickle.dumps(_Payload(marker)))
    try:
        from rle.serialization import load_pickle

        load_pickle(tmp / "cameras.pkl")
    finally:
        if marker.exists():
            return unclear("the payload ran")  # noqa: B012
    return unclear("the crafted file loaded")


def truncated_checkpoint(tmp):
    from rle.serialization import load_checkpoint_file

    torch.save({"state_dict": {"w": torch.zeros(1000)}}, tmp / "epoch_1.pth")
    data = (tmp / "epoch_1.pth").read_bytes()
    (tmp / "epoch_2.pth").write_bytes(data[: len(data) // 2])
    load_checkpoint_file(tmp / "epoch_2.pth")
    return unclear("a truncated checkpoint loaded")


def resume_after_torn_save(tmp):
    from rle.checkpoint import find_resumable_checkpoint

    good = {"meta": {"epoch": 1, "iter": 4}, "state_dict": {"w": torch.zeros(3)}}
    torch.save(good, tmp / "epoch_1.pth")
    data = (tmp / "epoch_1.pth").read_bytes()
    (tmp / "epoch_2.pth").write_bytes(data[: len(data) // 2])  # killed while saving
    (tmp / "last_checkpoint").write_text("epoch_2.pth")
    found = find_resumable_checkpoint(tmp, logger=logging.getLogger("fuzz"))
    if found and Path(found).name == "epoch_1.pth":
        return defined("resumes from the newest readable checkpoint (epoch_1.pth), with a warning")
    return unclear(f"resumes from {found}")


def checkpoint_of_another_model(tmp):
    from rle.serialization import check_state_dict

    model = {"head.fc.weight": torch.zeros(4, 2)}
    check_state_dict(model, {"state_dict": {"head.fc_coord.weight": torch.zeros(4, 2)}}, "rle.pth")
    return unclear("a checkpoint of another head loaded")


CASES: List[Case] = [
    Case("COCO: duplicate annotation ids", duplicate_ids, ("ann.json", "annotation id 7")),
    Case("COCO: annotation without 'id'", missing_id, ("ann.json", "annotations[1]", "'id'")),
    Case("COCO: keypoint value given as a string", string_keypoints,
         ("ann.json", "annotation 8", "'keypoints'")),
    Case("COCO: NaN x on a labelled keypoint", nan_labelled,
         ("ann.json", "annotation 8", "'keypoints'", "keypoint 0")),
    Case("COCO: NaN x on an unlabelled keypoint (v = 0), trained", nan_unlabelled),
    Case("COCO: one box entirely outside its image", one_box_outside),
    Case("COCO: every box outside its image (training)", every_box_outside,
         ("ann.json", "no samples", "outside the image")),
    Case("COCO: only crowd annotations (empty training set)", only_crowd,
         ("ann.json", "no samples", "crowd")),
    Case("COCO: detection score given as a string", det_string_score,
         ("det.json", "detection 0", "'score'")),
    Case("COCO: detection bbox with a string", det_string_bbox,
         ("det.json", "detection 0", "'bbox'")),
    Case("COCO: empty detection file", det_empty, ("det.json", "no samples", "0 detections")),
    Case("COCO: every detection below the score threshold", det_below_threshold,
         ("det.json", "no samples", "bbox_score_thr")),
    Case("COCO: truncated JPEG (missing_images='raise')", truncated_raise,
         ("ann.json", "image 1", "1.jpg", "truncated")),
    Case("COCO: truncated JPEG (missing_images='skip')", truncated_skip),
    Case("LoadImage: JPEG cut in half", load_truncated_jpeg, ("a.jpg", "truncated JPEG")),
    Case("LoadImage: PNG cut in half", load_truncated_png, ("a.png", "truncated PNG")),
    Case("LoadImage: a file that is not an image", load_not_an_image,
         ("a.jpg", "cannot read image")),
    Case("CocoKeypointMetric: duplicate annotation ids", metric_duplicate_ids,
         ("val.json", "duplicate annotation id 1")),
    Case("CocoKeypointMetric: no predictions", metric_empty, ("CocoKeypointMetric", "no predict")),
    Case("H36M npz: NaN in S", h36m_nan_s, ("train.npz", "record 0", "'S'", "joints [3]")),
    Case("H36M npz: inf in part", h36m_inf_part, ("train.npz", "record 0", "'part'")),
    Case("H36M npz: unparseable image name", h36m_bad_name,
         ("train.npz", "record 0", "'imgname'", "frame_0001.jpg")),
    Case("H36M cameras.pkl: camera without 'f'", h36m_camera_without_f,
         ("cameras.pkl", "'S1'", "'f'")),
    Case("H36M json: NaN in keypoints_world", h36m_json_nan,
         ("train.json", "annotation", "'keypoints_world'")),
    Case("H36M: no record of the requested subjects", h36m_no_subject,
         ("train.npz", "no samples", "S9")),
    Case("EncodeKeypoints: NaN on a labelled joint", encode_nan_labelled,
         ("a.jpg", "sample id 3", "[0]", "labelled")),
    Case("rle_loss: NaN target on a joint of weight 0", rle_nan_weight0),
    Case("coordinate_loss: inf target on a joint of weight 0", coord_inf_weight0),
    Case("DSNTHead.loss: NaN target on a joint of weight 0", dsnt_nan_weight0),
    Case("soft_argmax: +inf bins / all -inf map", soft_argmax_inf),
    Case("debiased_soft_argmax: +inf bins / all -inf map", debiased_inf),
    Case("dsnt(spatial_softmax): +inf bins / all -inf map", dsnt_inf),
    Case("heatmap_expectation/confidence: overflowed map", expectation_overflowed),
    Case("sampling_argmax: +inf bins / all -inf map", sampling_inf),
    Case("sampling_argmax: Gaussian basis on a 1x1 map", gaussian_1x1),
    Case("rle_loss: float16 / bfloat16 autocast, sigma logits -200..200", rle_low_precision),
    Case("checkpoint whose pickle calls os.system", crafted_checkpoint,
         ("crafted.pth", "refused", "system")),
    Case("checkpoint escalating through getattr(f, '__globals__')", getattr_escalation,
         ("crafted.pth", "refused", "getattr")),
    Case("cameras.pkl whose pickle calls os.system", crafted_cameras,
         ("cameras.pkl", "refused", "system")),
    Case("truncated checkpoint", truncated_checkpoint, ("epoch_2.pth", "epoch_1.pth")),
    Case("--resume after a save torn by a kill", resume_after_torn_save),
    Case("checkpoint of another head (strict match)", checkpoint_of_another_model,
         ("rle.pth", "missing keys", "head.fc.weight", "unexpected keys")),
]  # fmt: skip


@contextlib.contextmanager
def _captured():
    """The warnings logged through mmengine (and ``warnings``) while inside, not printed."""
    from mmengine.logging import MMLogger

    logger = MMLogger.get_current_instance()
    records: List[str] = []

    class _Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    keep = _Keep(logging.WARNING)
    levels = [(h, h.level) for h in logger.handlers]
    for h, _ in levels:
        h.setLevel(logging.CRITICAL)
    logger.addHandler(keep)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield records
            records.extend(str(w.message) for w in caught)
    finally:
        logger.removeHandler(keep)
        for h, level in levels:
            h.setLevel(level)


def run_case(case: Case) -> str:
    """The outcome of one case, in a fresh temporary folder."""
    with tempfile.TemporaryDirectory() as tmp, _captured():
        try:
            return case.run(Path(tmp))
        except Exception as err:  # noqa: BLE001 - classifying any failure is the point
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            first = first.replace(tmp + "/", "")
            if case.names and all(n in str(err) for n in case.names):
                # the start of the message: what it names (the table stays readable)
                return f"named error: {first[:140]}{'...' if len(first) > 140 else ''}"
            return unclear(f"{type(err).__name__}: {first}"[:200])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="also write the table to this file")
    args = parser.parse_args(argv)
    rows = [(case.name, run_case(case).replace("|", "\\|")) for case in CASES]
    kinds = [outcome.split(":", 1)[0] for _, outcome in rows]
    count = (
        f"{len(rows)} cases: {kinds.count('named error')} named errors, "
        f"{kinds.count('counted skip')} counted skips, {kinds.count('defined')} defined results, "
        f"{kinds.count('UNCLEAR')} unclear"
    )
    text = table(rows, ("case", "outcome")) + "\n\n" + count + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
