"""ONNX export (rle.deploy, tools/export_onnx.py): every registered head decodes inside the graph
as it does eagerly, 2-D and 3-D, with and without the flip test, at batch 1 and 3 (dynamic
batch); the onnxruntime runner decodes to the estimator's pixels and runs through
inference_topdown; the metadata round trip; named errors."""

from __future__ import annotations

import contextlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.structures import BaseDataElement

pytest.importorskip("onnx", reason="onnx is not installed (pip install 'rle-pose[deploy]')")
pytest.importorskip(
    "onnxruntime", reason="onnxruntime is not installed (pip install 'rle-pose[deploy]')"
)

from rle.deploy import (  # noqa: E402 - after the skips: the module needs onnx at export time
    INTERVAL_LEVELS,
    OnnxPoseModel,
    export_onnx,
    read_onnx_metadata,
)
from rle.registry import MODELS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
INPUT_SIZE = (48, 64)  # (w, h)
FLIP = [0, 2, 1, 4, 3]
TOL = 1e-4  # normalised units
SMALL = dict(deconv_channels=(8,))
HEADS_2D = {
    "RLEHead": dict(type="RLEHead"),
    "RegressionHead": dict(type="RegressionHead"),
    "SoftArgmaxHead": dict(type="SoftArgmaxHead", **SMALL),
    "DSNTHead": dict(type="DSNTHead", **SMALL),
    "DebiasedIPRHead": dict(type="DebiasedIPRHead", beta=0.5, **SMALL),
    "SamplingArgmaxHead": dict(type="SamplingArgmaxHead", **SMALL),
    "HeatmapRLEHead": dict(type="HeatmapRLEHead", **SMALL),
}
HEADS_3D = {
    f"{name}-3d": dict(cfg, num_dims=3, **({"depth_bins": 4} if "deconv_channels" in cfg else {}))
    for name, cfg in HEADS_2D.items()
}
NAMES = [*HEADS_2D, *HEADS_3D]
# torch.export + the ONNX translation take 2-5 s per graph: the dynamo exporter (the default)
# checks every head without the flip test and the flip test (the estimator's code, the same for
# every head) on a head with sigma and a volumetric one; the TorchScript exporter (0.2 s) checks
# every head with the flip test
CASES = [(name, False, "dynamo") for name in NAMES]
CASES += [(name, True, "dynamo") for name in ("RLEHead", "SoftArgmaxHead-3d")]
CASES += [(name, True, "torchscript") for name in NAMES]


def build(head: dict, *, flip_test=False, num_keypoints=5, meta=True, seed=0):
    """A tiny estimator with a head whose outputs vary (the default initialisations make nearly
    uniform maps and near-zero regressions, where any graph would agree)."""
    torch.manual_seed(seed)
    model = MODELS.build(
        dict(
            type="TopdownPoseEstimator",
            backbone=dict(type="TimmBackbone", model_name="test_resnet"),
            head=dict(head, num_keypoints=num_keypoints),
            test_cfg=dict(flip_test=flip_test),
        )
    )
    with torch.no_grad():
        for name, p in model.head.named_parameters():
            if "loss_module" not in name:  # the flow: only the intervals read it
                p.normal_(0.0, 0.3)
    if meta:
        names = ["nose", "left_eye", "right_eye", "left_ear", "right_ear"][:num_keypoints]
        model.dataset_meta = dict(keypoint_names=names, flip_indices=FLIP[:num_keypoints])
    return model.eval()


@contextlib.contextmanager
def flip_test(model, flip: bool):
    """The model's ``test_cfg["flip_test"]`` set to ``flip`` (the models are shared by the
    exports with and without the flip test)."""
    saved = model.test_cfg
    model.test_cfg = {**saved, "flip_test": flip}
    try:
        yield model
    finally:
        model.test_cfg = saved


def _eager(model, x, flip):
    with flip_test(model, flip), torch.no_grad():
        return model._predict_tensors(x, FLIP)


def _memoised(interval_scale):
    """``head.interval_scale`` computed once per level: integrating the flow's density takes
    seconds, and the exports of one model would repeat it (the values are the head's own)."""
    cache = {}

    def wrapper(levels):
        missing = tuple(lv for lv in levels if lv not in cache)
        if missing:
            scale = interval_scale(missing)
            if scale is None:
                return None
            cache.update(scale)
        return {lv: cache[lv] for lv in levels}

    return wrapper


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """``(name, flip, exporter) -> (model, path)``: one model per head, each graph exported
    once for the module."""
    folder = tmp_path_factory.mktemp("onnx")
    models, files = {}, {}

    def get(name, flip, exporter="dynamo"):
        if name not in models:
            model = build({**HEADS_2D, **HEADS_3D}[name])
            model.head.interval_scale = _memoised(model.head.interval_scale)
            models[name] = model
        model = models[name]
        if (name, flip, exporter) not in files:
            out = folder / f"{name}-{flip}-{exporter}.onnx"
            files[name, flip, exporter] = export_onnx(
                model, out, input_size=INPUT_SIZE, flip_test=flip, exporter=exporter
            )
        return model, files[name, flip, exporter]

    return get


def _samples(n, convention="rle", rng=None):
    rng = rng or np.random.default_rng(0)
    out = []
    for i in range(n):
        center = rng.uniform(50, 150, 2)
        meta = dict(id=i, input_size=INPUT_SIZE, input_center=center, flip_indices=FLIP,
                    input_scale=rng.uniform(60, 120) * np.array([0.75, 1.0]),
                    bbox_rotation=float(rng.uniform(-30, 30)), convention=convention)  # fmt: skip
        out.append(BaseDataElement(metainfo=meta))
    return out


# -- parity --------------------------------------------------------------------------------
def test_every_registered_head_is_covered():
    import heads

    build(HEADS_2D["RegressionHead"])  # the registry imports the heads on the first build
    registered = {
        name
        for name, cls in MODELS.module_dict.items()
        if isinstance(cls, type) and issubclass(cls, heads.BaseHead)
    }
    assert registered == {cfg["type"] for cfg in HEADS_2D.values()}


@pytest.mark.parametrize("name, flip, exporter", CASES)
def test_onnx_matches_eager(exported, name, flip, exporter):
    model, path = exported(name, flip, exporter)
    runner = OnnxPoseModel(path)
    assert runner.metadata["exporter"] == exporter
    assert runner.test_cfg["flip_test"] is flip
    assert runner.has_sigma == model.head.has_sigma
    errors = {}
    for batch in (1, 3):  # traced at 2: a baked batch size would fail here
        x = torch.randn(
            batch, 3, INPUT_SIZE[1], INPUT_SIZE[0], generator=torch.Generator().manual_seed(batch)
        )
        want = _eager(model, x, flip)
        got = runner.run(x)
        for key, w, g in zip(("coords", "scores", "sigma"), want, got):
            if w is None:
                assert g is None, key
                continue
            assert g.shape == tuple(w.shape), key
            errors[key, batch] = float(np.abs(g - w.numpy()).max())
    assert max(errors.values()) <= TOL, errors
    # the outputs vary: the parity is not that of constants
    assert float(want[0].std()) > 1e-3


def test_static_batch(tmp_path):
    model = build(HEADS_2D["DSNTHead"], flip_test=True)
    path = export_onnx(
        model, tmp_path / "ts.onnx", input_size=INPUT_SIZE, exporter="torchscript",
        dynamic_batch=False,
    )  # fmt: skip
    runner = OnnxPoseModel(path)
    assert runner.metadata["exporter"] == "torchscript" and not runner.metadata["dynamic_batch"]
    assert runner.session.get_inputs()[0].shape == [2, 3, INPUT_SIZE[1], INPUT_SIZE[0]]
    x = torch.randn(2, 3, INPUT_SIZE[1], INPUT_SIZE[0])
    for want, got in zip(_eager(model, x, True)[:2], runner.run(x)):
        assert float(np.abs(got - want.numpy()).max()) <= TOL
    with pytest.raises(ValueError, match="inputs: the graph takes batches of 2 only"):
        runner.run(x[:1])


def test_auto_falls_back_to_torchscript(tmp_path, monkeypatch):
    from rle.deploy import onnx_export

    def broken(*args):
        raise RuntimeError("no graph today")

    model = build(HEADS_2D["SoftArgmaxHead"])
    monkeypatch.setattr(onnx_export, "_export_dynamo", broken)
    with pytest.warns(
        UserWarning, match="fell back to torchscript: dynamo: RuntimeError: no graph"
    ):
        path = export_onnx(model, tmp_path / "a.onnx", input_size=INPUT_SIZE)
    assert read_onnx_metadata(path)["exporter"] == "torchscript"
    monkeypatch.setattr(onnx_export, "_export_torchscript", broken)
    with pytest.raises(RuntimeError, match="SoftArgmaxHead failed: dynamo: .*; torchscript: "):
        export_onnx(model, tmp_path / "b.onnx", input_size=INPUT_SIZE)
    assert not (tmp_path / "b.onnx").exists()


# -- the runner ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["RLEHead", "SoftArgmaxHead-3d"])
def test_predict_matches_the_estimator(exported, name):
    model, path = exported(name, True)
    runner = OnnxPoseModel(path)
    x = torch.randn(3, 3, INPUT_SIZE[1], INPUT_SIZE[0])
    with flip_test(model, True):
        want = model.predict(x, _samples(3))
    got = runner.predict(x, _samples(3))
    for w, g in zip(want, got):
        np.testing.assert_allclose(g.pred_keypoints, w.pred_keypoints, atol=1e-3)
        np.testing.assert_allclose(g.pred_scores, w.pred_scores, atol=TOL)
        if w.pred_sigma is None:
            assert g.pred_sigma is None
        else:
            np.testing.assert_allclose(g.pred_sigma, w.pred_sigma, atol=TOL)
        if "3d" in name:  # root-relative mm: 2000 mm per normalised unit
            np.testing.assert_allclose(g.pred_depth, w.pred_depth, atol=2000 * TOL)
    with pytest.raises(ValueError, match="'mmpose' pixel convention"):
        runner.predict(x, _samples(3, convention="mmpose"))
    bad = _samples(3)
    bad[1].set_metainfo(dict(flip_indices=list(range(5))))
    with pytest.raises(ValueError, match="sample 1: flip_indices"):
        runner.predict(x, bad)
    with pytest.raises(ValueError, match=r"inputs must have shape \(B, 3, H=64, W=48\)"):
        runner.run(x[..., :40])


def test_inference_topdown_runs_the_onnx_model(exported):
    from rle.apis import inference_topdown

    model, path = exported("RLEHead", True)
    model.test_pipeline = [
        dict(type="GetBBoxCenterScale", padding=1.25),
        dict(type="TopdownAffine", input_size=INPUT_SIZE),
        dict(type="PackPoseInputs"),
    ]
    runner = OnnxPoseModel(path)
    image = np.random.default_rng(0).integers(0, 256, (120, 100, 3), dtype=np.uint8)
    boxes = [[10, 12, 70, 110], [30, 5, 95, 90]]
    with flip_test(model, True):
        want = inference_topdown(model, image, boxes)
    got = inference_topdown(runner, image, boxes)
    for w, g in zip(want, got):
        np.testing.assert_allclose(g.keypoints, w.keypoints, atol=1e-3)
        np.testing.assert_allclose(g.keypoint_scores, w.keypoint_scores, atol=TOL)
        np.testing.assert_allclose(g.interval_axes, w.interval_axes, atol=1e-3)
    assert got[0].interval_level == 0.9


# -- metadata --------------------------------------------------------------------------------
def test_metadata_round_trip(exported):
    model, path = exported("RLEHead", True)
    meta = read_onnx_metadata(path)
    assert meta["input_size"] == list(INPUT_SIZE) and meta["convention"] == "rle"
    assert meta["test_cfg"]["flip_test"] is True and meta["flip_indices"] == FLIP
    assert meta["test_cfg"]["depth_scale"] == model.test_cfg["depth_scale"]
    assert meta["dataset_meta"] == model.dataset_meta
    assert meta["head"] == "RLEHead" and meta["outputs"] == ["coords", "scores", "sigma"]
    pre = meta["data_preprocessor"]
    assert pre["bgr_to_rgb"] is True
    np.testing.assert_allclose(pre["mean"], model.data_preprocessor.mean.flatten().tolist())
    np.testing.assert_allclose(pre["std"], model.data_preprocessor.std.flatten().tolist())
    runner = OnnxPoseModel(path)
    levels = list(INTERVAL_LEVELS)
    assert runner.interval_scale(levels) == model.head.interval_scale(levels)
    with pytest.raises(ValueError, match=r"levels: 0\.75 was not stored at export; stored: "):
        runner.interval_scale([0.75])
    assert runner.dataset_meta["flip_indices"] == FLIP and runner.convention == "rle"
    assert runner.test_pipeline[1] == dict(
        type="TopdownAffine", input_size=INPUT_SIZE, convention="rle"
    )
    # the preprocessor is the model's: BGR uint8 crops -> the same normalised batch
    crops = [torch.randint(0, 256, (3, INPUT_SIZE[1], INPUT_SIZE[0]), dtype=torch.uint8)]
    data = dict(inputs=crops, data_samples=_samples(1))
    want = model.data_preprocessor(dict(data), False)["inputs"]
    assert torch.equal(runner.data_preprocessor(dict(data), training=False)["inputs"], want)


def test_heads_without_intervals_and_coco_fallback(tmp_path):
    model = build(HEADS_2D["RegressionHead"], num_keypoints=17, meta=False)
    path = export_onnx(model, tmp_path / "reg.onnx", input_size=INPUT_SIZE, exporter="torchscript")
    runner = OnnxPoseModel(path)
    assert runner.interval_scale([0.9]) is None and not runner.has_sigma
    meta = runner.metadata
    assert meta["dataset_meta"] is None and meta["interval_scale"] is None
    assert meta["outputs"] == ["coords", "scores"] and meta["model"] is None
    # no dataset meta stored, 17 keypoints: COCO's
    assert runner.dataset_meta["keypoint_names"][1] == "left_eye"
    assert runner.dataset_meta["flip_indices"][1] == 2


# -- errors --------------------------------------------------------------------------------
def test_export_errors(tmp_path):
    from heads import RegressionHead

    model = build(HEADS_2D["RegressionHead"], meta=False)
    out = tmp_path / "x.onnx"
    with pytest.raises(TypeError, match="model must be a TopdownPoseEstimator, got RegressionHead"):
        export_onnx(model.head, out)
    with pytest.raises(ValueError, match="input_size"):
        export_onnx(model, out)  # no test_pipeline, no head input_size
    with pytest.raises(ValueError, match="input_size must be"):
        export_onnx(model, out, input_size=(48, 0))
    with pytest.raises(ValueError, match="flip_test needs flip_indices"):
        export_onnx(model, out, input_size=INPUT_SIZE, flip_test=True)
    with pytest.raises(ValueError, match="flip_indices must be a permutation of range"):
        export_onnx(model, out, input_size=INPUT_SIZE, flip_test=True, flip_indices=[0, 0, 1, 2, 3])
    with pytest.raises(ValueError, match="exporter must be one of"):
        export_onnx(model, out, input_size=INPUT_SIZE, exporter="tflite")
    with pytest.raises(ValueError, match="opset must be"):
        export_onnx(model, out, input_size=INPUT_SIZE, opset=7)
    with pytest.raises(TypeError, match="flip_test must be a bool"):
        export_onnx(model, out, input_size=INPUT_SIZE, flip_test="yes")

    class SigmaLess(RegressionHead):  # claims a sigma its predict does not give
        has_sigma = True

    model.head = SigmaLess(model.head.in_channels, 5)
    with pytest.raises(TypeError, match=r"SigmaLess.predict gave sigma NoneType.*has_sigma"):
        export_onnx(model, out, input_size=INPUT_SIZE)
    assert not out.exists()


def test_runner_errors(tmp_path):
    import onnx

    with pytest.raises(ValueError, match="path must be an existing .onnx file"):
        OnnxPoseModel(tmp_path / "missing.onnx")
    plain = tmp_path / "plain.onnx"  # an ONNX model of another tool: no rle-pose metadata
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    onnx.save(
        onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)]), plain
    )
    with pytest.raises(ValueError, match="has no rle-pose metadata"):
        OnnxPoseModel(plain)
    with pytest.raises(ValueError, match="has no rle-pose metadata"):
        read_onnx_metadata(plain)
    with pytest.raises(TypeError, match="providers must be a list"):
        OnnxPoseModel(plain, providers="CPUExecutionProvider")


# -- the tool --------------------------------------------------------------------------------
def _tool():
    spec = importlib.util.spec_from_file_location("export_onnx_tool", ROOT / "tools/export_onnx.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tool_with_a_self_describing_checkpoint_and_with_a_config(tmp_path):
    tool = _tool()
    head = dict(type="RegressionHead", num_keypoints=17)
    cfg = dict(
        type="TopdownPoseEstimator",
        backbone=dict(type="TimmBackbone", model_name="test_resnet"),
        head=head,
        test_cfg=dict(flip_test=True),
    )
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    info = {"model": cfg, "input_size": list(INPUT_SIZE), "convention": "rle"}
    ckpt = tmp_path / "tiny.pth"
    torch.save({"meta": {"rle_pose": info}, "state_dict": model.state_dict()}, ckpt)

    out = tool.main([str(ckpt), "--out", str(tmp_path / "a.onnx"), "--no-flip-test"])
    meta = read_onnx_metadata(out)
    assert meta["test_cfg"]["flip_test"] is False and meta["model"]["head"] == head
    assert meta["input_size"] == list(INPUT_SIZE) and meta["dataset_meta"]["num_keypoints"] == 17

    config = tmp_path / "tiny_config.py"
    pipeline = [
        dict(type="GetBBoxCenterScale", padding=1.25),
        dict(type="TopdownAffine", input_size=INPUT_SIZE),
        dict(type="PackPoseInputs"),
    ]
    config.write_text(
        f"model = {cfg!r}\ntest_dataloader = dict(dataset=dict(pipeline={pipeline!r}))\n"
    )
    args = ["--out", str(tmp_path / "b.onnx"), "--opset", "17", "--exporter", "torchscript"]
    out = tool.main([str(config), str(ckpt), *args])
    meta = read_onnx_metadata(out)
    assert meta["test_cfg"]["flip_test"] is True  # the config's test_cfg
    assert meta["flip_indices"][1] == 2  # COCO's, from init_model's dataset_meta
    runner = OnnxPoseModel(out)
    x = torch.randn(1, 3, INPUT_SIZE[1], INPUT_SIZE[0])
    model.eval()
    with torch.no_grad():
        want = model._predict_tensors(x, meta["flip_indices"])[0]
    assert float(np.abs(runner.run(x)[0] - want.numpy()).max()) <= TOL
    with pytest.raises(SystemExit):
        tool.parse_args([str(ckpt)])  # --out is required
