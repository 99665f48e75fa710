"""Safe loading (issue #11): a crafted checkpoint or cameras.pkl is refused on every load path
(tools/test.py, load_from, --resume PATH, auto-resume, the comparison, H36MDataset, the
SynthH36M writer) without running anything; our own, mmengine's and MMPose's checkpoints still
load; ``unsafe`` / ``--unsafe-load`` is the opt-in; a checkpoint that does not fit the config
is an error listing the keys; a truncated checkpoint names the file and an older one."""

import fractions
import json
import os
import pickle
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from rle.serialization import (
    CheckpointMismatchError,
    UnreadableFileError,
    UnsafeFileError,
    check_state_dict,
    load_checkpoint_file,
    load_pickle,
)
from tests.test_training import ROOT, _tiny, _tool

SYNTH = ROOT / "configs" / "synthcoco"
L1 = SYNTH / "regression-l1_resnet18_1xb32-20e_synthcoco-128x96.py"
RLE = SYNTH / "rle_resnet18_1xb32-20e_synthcoco-128x96.py"
GOLDEN = ROOT.parent / "shared" / "golden" / "interop"
REAL_CAMERAS = ROOT.parent / "shared" / "data" / "h36m_sample" / "cameras.pkl"


class _Call:
    """Pickles as ``fn(*args)``; callable, so that it can be the ``fn`` of another ``_Call``."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args

    def __call__(self, *args):
        raise AssertionError("only ever pickled")


def _escalation(start, command):
    """``getattr(start, "__globals__")["__builtins__"]["__import__"]("os").system(command)``,
    built from getattr calls only: what a free ``getattr`` allows from any admitted function."""
    globs = _Call(getattr, start, "__globals__")
    builtins = _Call(_Call(getattr, globs, "get"), "__builtins__")
    os_module = _Call(_Call(_Call(getattr, builtins, "get"), "__import__"), "os")
    return _Call(_Call(getattr, os_module, "system"), command)


def _payload(kind, marker):
    """(object whose unpickling creates ``marker``, regex of the global the refusal names)."""
    from mmengine.logging.history_buffer import HistoryBuffer

    touch = f"touch {marker}"
    return {
        "os.system": (_Call(os.system, touch), rf"{os.system.__module__}\.system"),
        "exec": (_Call(exec, f"open({str(marker)!r}, 'w').close()"), r"builtins\.exec"),
        # from a function the allowlist admits
        "getattr-globals": (
            _escalation(torch._utils._rebuild_tensor_v2, touch),
            r"builtins\.getattr\(torch\._utils\._rebuild_tensor_v2, '__globals__'\)",
        ),
        # from the one getattr pair that is admitted, HistoryBuffer's own statistics method
        "getattr-history-buffer": (
            _escalation(_Call(getattr, HistoryBuffer, "mean"), touch),
            r"builtins\.getattr\(mmengine\.logging\.history_buffer\.HistoryBuffer\.mean, "
            r"'__globals__'\)",
        ),
    }[kind]


KINDS = ["os.system", "exec", "getattr-globals", "getattr-history-buffer"]


def _in_data_pickle(kind, name):
    """What the refusal of a payload in a data pickle names: data pickles get no getattr."""
    return r"refused builtins\.getattr:" if kind.startswith("getattr") else name


def _bad_checkpoint(path: Path, kind: str):
    """A normal-looking mmengine checkpoint with the payload in ``meta``."""
    marker = path.parent / f"MARKER_{path.stem}"
    payload, name = _payload(kind, marker)
    torch.save({"meta": {"epoch": 1, "note": payload}, "state_dict": {}}, path)
    return marker, name


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Two tiny configs (L1 and RLE head) on generated data, and an L1 checkpoint trained for
    one epoch (two iterations)."""
    from mmengine.runner import Runner

    from rle.engine import load_config, setup_engine

    base = tmp_path_factory.mktemp("safe_loading")
    configs = {}
    for name, path in (("l1", L1), ("rle", RLE)):
        configs[name] = base / f"tiny_{name}.py"
        cfg = load_config(path, cfg_options=_tiny(path, base), work_dir=str(base / "work"))
        cfg.dump(str(configs[name]))
    setup_engine()
    no_val = {"val_dataloader": None, "val_cfg": None, "val_evaluator": None}
    Runner.from_cfg(load_config(configs["l1"], cfg_options=no_val)).train()
    return SimpleNamespace(configs=configs, work=base / "work", ckpt=base / "work" / "epoch_1.pth")


def test_the_payloads_are_real(tmp_path):
    # plain unpickling runs them: the refusals below are what stands between a file and code
    for kind in ("os.system", "getattr-history-buffer"):
        marker = tmp_path / f"MARKER_{kind}"
        pickle.loads(pickle.dumps(_payload(kind, marker)[0], protocol=2))
        assert marker.exists(), kind


@pytest.mark.parametrize("kind", KINDS)
def test_loaders_refuse_payloads_naming_the_global(tmp_path, kind):
    marker, name = _bad_checkpoint(tmp_path / "bad.pth", kind)
    with pytest.raises(UnsafeFileError, match=name) as err:
        load_checkpoint_file(tmp_path / "bad.pth", "cpu")
    assert str(tmp_path / "bad.pth") in str(err.value) and "--unsafe-load" in str(err.value)
    assert isinstance(err.value, ValueError) and isinstance(err.value, pickle.UnpicklingError)
    payload, _ = _payload(kind, marker)
    name = _in_data_pickle(kind, name)
    for protocol in (2, 4, 5):
        (tmp_path / "cameras.pkl").write_bytes(pickle.dumps({"S1": payload}, protocol=protocol))
        with pytest.raises(UnsafeFileError, match=name) as err:
            load_pickle(tmp_path / "cameras.pkl")
        assert "unsafe=True" in str(err.value)
    assert not marker.exists()


def test_tools_test_refuses_a_crafted_checkpoint(tiny, tmp_path):
    marker, name = _bad_checkpoint(tmp_path / "bad.pth", "getattr-globals")
    argv = [str(tiny.configs["l1"]), str(tmp_path / "bad.pth"), "--work-dir", str(tmp_path)]
    with pytest.raises(UnsafeFileError, match=name):
        _tool("test").main(argv)
    assert not marker.exists()


def test_load_from_in_a_runner_refuses(tiny, tmp_path):
    from mmengine.runner import Runner

    from rle.engine import load_config, setup_engine

    marker, name = _bad_checkpoint(tmp_path / "bad.pth", "os.system")
    setup_engine()
    cfg = load_config(tiny.configs["l1"], work_dir=str(tmp_path / "w"))
    cfg.load_from = str(tmp_path / "bad.pth")
    with pytest.raises(UnsafeFileError, match=name):
        Runner.from_cfg(cfg).load_or_resume()
    assert not marker.exists()


def test_resume_path_and_auto_resume_refuse(tiny, tmp_path):
    train = _tool("train")
    marker, name = _bad_checkpoint(tmp_path / "bad.pth", "getattr-history-buffer")
    config = str(tiny.configs["l1"])
    with pytest.raises(UnsafeFileError, match=name):  # --resume PATH
        train.main([config, "--resume", str(tmp_path / "bad.pth"), "--work-dir", str(tmp_path)])
    work = tmp_path / "auto"
    work.mkdir()
    marker, name = _bad_checkpoint(work / "epoch_3.pth", "os.system")
    (work / "last_checkpoint").write_text(str(work / "epoch_3.pth"))
    # --resume: the work dir's latest; rle.checkpoint reports every candidate it refused
    with pytest.raises((UnsafeFileError, RuntimeError), match=name):
        train.main([config, "--resume", "--work-dir", str(work)])
    assert not list(tmp_path.rglob("MARKER_*"))


def test_compare_refuses_a_finished_run_whose_checkpoint_is_crafted(tiny, tmp_path):
    from rle.compare import compare

    work = tmp_path / "runs" / "bad"
    work.mkdir(parents=True)
    shutil.copy(tiny.configs["l1"], work / "compare_config.py")
    marker, name = _bad_checkpoint(work / "epoch_1.pth", "getattr-globals")
    done = dict(checkpoint=str(work / "epoch_1.pth"), epochs=1)
    (work / "done.json").write_text(json.dumps(done))
    report = compare([tmp_path / "runs"], work_root=tmp_path / "runs", timing_repeats=1)
    assert report.rows[0]["status"].startswith("crashed: UnsafeFileError")
    assert re.search(name, (work / "crash.log").read_text())
    assert not marker.exists()


def _npz(path):
    """A one-record MMPose-layout Human3.6M annotation file."""
    name = "S1/S1_Directions_1.54138969/S1_Directions_1.54138969_000001.jpg"
    np.savez(path, imgname=np.array([name]), center=np.zeros((1, 2)), scale=np.ones(1),
             part=np.zeros((1, 17, 3)), S=np.zeros((1, 17, 4)))  # fmt: skip
    return path


@pytest.mark.parametrize("kind", ["os.system", "getattr-globals"])
def test_crafted_cameras_pkl_refused_by_dataset_and_writer(tmp_path, capsys, kind):
    from rle.datasets import synthetic
    from rle.datasets.h36m import H36MDataset

    marker = tmp_path / "MARKER"
    payload, name = _payload(kind, marker)
    name = _in_data_pickle(kind, name)
    cams = tmp_path / "cameras.pkl"
    cams.write_bytes(pickle.dumps({("S1", "54138969"): payload}, protocol=4))
    with pytest.raises(UnsafeFileError, match=name):
        H36MDataset(ann_file=str(_npz(tmp_path / "ann.npz")), camera_param_file=str(cams))
    with pytest.raises(UnsafeFileError, match=name):
        synthetic.make(synthetic.SYNTH_H36M, tmp_path / "out", cameras_pkl=cams,
                       frames_per_subject=1, image_size=(64, 64), progress=False)  # fmt: skip
    argv = ["h36m", "--out", str(tmp_path / "cli"), "--cameras", str(cams), "--no-progress"]
    assert _tool("make_synthetic").main(argv) == 2
    assert re.search(name, capsys.readouterr().err)
    assert not marker.exists()


def test_own_checkpoint_resumes_and_loads_via_load_from(tiny, tmp_path):
    from mmengine.logging.history_buffer import HistoryBuffer
    from mmengine.runner import Runner

    from rle.engine import load_config, setup_engine

    ckpt = torch.load(tiny.ckpt, map_location="cpu", weights_only=False)  # tests are trusted
    safe = load_checkpoint_file(tiny.ckpt, "cpu")
    assert isinstance(safe["message_hub"]["log_scalars"]["train/loss"], HistoryBuffer)
    setup_engine()
    for resume in (True, False):
        cfg = load_config(tiny.configs["l1"], work_dir=str(tmp_path / "w"),
                          cfg_options={"train_cfg.max_epochs": 2})  # fmt: skip
        cfg.resume, cfg.load_from = resume, str(tiny.ckpt)
        runner = Runner.from_cfg(cfg)
        runner.load_or_resume()
        if resume:
            assert (runner.epoch, runner.iter) == (1, ckpt["meta"]["iter"])
        state = runner.model.state_dict()
        for key, value in ckpt["state_dict"].items():
            assert torch.equal(state[key], value), key


def test_golden_checkpoints_and_cameras_load():
    from mmengine.logging.history_buffer import HistoryBuffer

    files = sorted(GOLDEN.glob("mmpose_*.pth"))
    if not files or not REAL_CAMERAS.is_file():
        pytest.skip("../shared golden checkpoints not available")
    for path in files + [GOLDEN / "official_rle_res18n.pth"]:
        safe = load_checkpoint_file(path, "cpu")
        trusted = torch.load(path, map_location="cpu", weights_only=False)
        state = safe.get("state_dict", safe)
        assert state.keys() == trusted.get("state_dict", trusted).keys(), path.name
        for key, value in state.items():
            assert torch.equal(value, trusted.get("state_dict", trusted)[key]), (path.name, key)
        if "message_hub" in safe:
            buffers = safe["message_hub"]["log_scalars"].values()
            assert all(isinstance(b, HistoryBuffer) for b in buffers)
            assert safe["meta"]["epoch"] == trusted["meta"]["epoch"]
    cams = load_pickle(REAL_CAMERAS)
    with open(REAL_CAMERAS, "rb") as f:
        trusted = pickle.load(f)
    assert cams.keys() == trusted.keys()
    key = next(iter(cams))
    np.testing.assert_array_equal(cams[key]["R"], trusted[key]["R"])


def test_unsafe_opt_in_loads_what_the_safe_path_refuses(tmp_path):
    from mmengine.runner.checkpoint import CheckpointLoader

    from rle.engine import setup_engine

    path = tmp_path / "fraction.pth"
    torch.save({"meta": {"ratio": fractions.Fraction(1, 3)}}, path)
    with pytest.raises(UnsafeFileError, match=r"fractions\.Fraction"):
        load_checkpoint_file(path)
    assert load_checkpoint_file(path, unsafe=True)["meta"]["ratio"] == fractions.Fraction(1, 3)
    setup_engine(unsafe_load=True)  # what --unsafe-load does
    try:
        assert CheckpointLoader.load_checkpoint(str(path))["meta"]["ratio"].denominator == 3
    finally:
        setup_engine()
    with pytest.raises(UnsafeFileError, match=r"fractions\.Fraction"):
        CheckpointLoader.load_checkpoint(str(path))
    (tmp_path / "f.pkl").write_bytes(pickle.dumps([fractions.Fraction(2, 3)]))
    with pytest.raises(UnsafeFileError, match=r"fractions\.Fraction"):
        load_pickle(tmp_path / "f.pkl")
    assert load_pickle(tmp_path / "f.pkl", unsafe=True) == [fractions.Fraction(2, 3)]
    with pytest.raises(TypeError, match="unsafe"):
        load_checkpoint_file(path, unsafe="yes")


def test_unsafe_load_flag_reaches_the_library(monkeypatch, tmp_path):
    import rle.compare
    import rle.compare.training
    import rle.engine
    from rle.compare.runs import RunSpec
    from rle.compare.worker import main as worker_main

    commands = []

    def popen(cmd, **kwargs):
        commands.append(cmd)
        return SimpleNamespace(poll=lambda: 1, returncode=1)

    # the comparison's parallel training passes the flag on to its worker processes
    monkeypatch.setattr(rle.compare.training.subprocess, "Popen", popen)
    spec = RunSpec("l1", L1, tmp_path / "l1")
    rle.compare.training.train_parallel([spec], 2, log=lambda line: None, unsafe_load=True)
    assert "rle.compare.worker" in commands[0] and commands[0][-1] == "--unsafe-load"
    seen = []
    for name, argv in (("train", [str(L1)]), ("test", [str(L1), "x.pth"])):
        tool = _tool(name)
        monkeypatch.setattr(tool, "config_from_args", lambda args, **kw: "cfg")
        record = lambda *a, unsafe_load, which=name: seen.append((which, unsafe_load))  # noqa: E731
        monkeypatch.setattr(tool, name, record)
        tool.main(argv + ["--unsafe-load"])
        tool.main(argv)
    record = lambda *a, unsafe_load, **kw: seen.append(unsafe_load)  # noqa: E731
    monkeypatch.setattr(rle.compare, "compare", record)
    _tool("compare").main([str(L1), "--unsafe-load"])
    monkeypatch.setattr(rle.engine, "load_config", lambda *a, **kw: "cfg")
    monkeypatch.setattr(rle.engine, "train", lambda cfg, unsafe_load: seen.append(unsafe_load))
    worker_main(["c.py", "w", "--unsafe-load"])
    assert seen == [("train", True), ("train", False), ("test", True), ("test", False), True, True]


def test_rle_checkpoint_on_an_l1_config_is_an_error_listing_the_keys(tiny, tmp_path):
    from mmengine.config import Config

    from rle.registry import MODELS

    rle_model = MODELS.build(Config.fromfile(str(tiny.configs["rle"])).model)
    torch.save({"meta": {}, "state_dict": rle_model.state_dict()}, tmp_path / "rle.pth")
    argv = [str(tiny.configs["l1"]), str(tmp_path / "rle.pth"), "--work-dir", str(tmp_path)]
    with pytest.raises(CheckpointMismatchError) as err:
        _tool("test").main(argv)
    text = str(err.value)
    assert str(tmp_path / "rle.pth") in text
    assert "2 missing keys: head.fc.weight, head.fc.bias;" in text  # the L1 head's
    assert re.search(r"\d+ unexpected keys: head\.fc_coord\.weight, .*\(\d+ more\)", text)
    assert "the config it was trained with" in text


def test_check_state_dict_lists_missing_unexpected_and_shapes():
    model = {f"a.{i}": torch.zeros(2) for i in range(7)}
    model["bn.num_batches_tracked"] = torch.zeros(())
    ckpt = {"state_dict": {"module.a.0": torch.zeros(3), "module.extra": torch.zeros(1)}}
    with pytest.raises(CheckpointMismatchError) as err:
        check_state_dict(model, ckpt, "x.pth")
    text = str(err.value)
    assert text.startswith("x.pth does not fit the model: 6 missing keys: a.1, a.2")
    assert "(1 more)" in text and "1 unexpected keys: extra" in text
    assert "1 shape mismatches: a.0 (3,) in the checkpoint, (2,) in the model" in text
    assert "num_batches_tracked" not in text
    check_state_dict(model, {f"a.{i}": torch.ones(2) for i in range(7)}, "x.pth")


def test_truncated_or_foreign_files_name_the_file(tiny, tmp_path):
    from mmengine.runner import Runner

    from rle.engine import load_config, setup_engine

    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(tiny.ckpt, work / "epoch_1.pth")
    data = tiny.ckpt.read_bytes()
    (work / "epoch_2.pth").write_bytes(data[: len(data) // 2])
    os.utime(work / "epoch_1.pth", (1, 1))  # older than epoch_2: the one to fall back to
    with pytest.raises(UnreadableFileError, match=r"epoch_2\.pth: cannot load") as err:
        load_checkpoint_file(work / "epoch_2.pth")
    assert "truncated" in str(err.value) and str(work / "epoch_1.pth") in str(err.value)
    (work / "last_checkpoint").write_text(str(work / "epoch_2.pth"))
    setup_engine()
    cfg = load_config(tiny.configs["l1"], work_dir=str(work), resume=True)
    with pytest.raises(UnreadableFileError, match=r"epoch_2\.pth.*epoch_1\.pth"):
        Runner.from_cfg(cfg).load_or_resume()  # auto-resume
    (tmp_path / "cameras.pkl").write_bytes(pickle.dumps({"S1": np.zeros(3)})[:20])
    with pytest.raises(UnreadableFileError, match="cameras.pkl: cannot load"):
        load_pickle(tmp_path / "cameras.pkl")
    scripted = torch.jit.script(torch.nn.Linear(2, 2))
    scripted.save(str(tmp_path / "scripted.pt"))
    with pytest.raises(UnsafeFileError, match="TorchScript"):
        load_checkpoint_file(tmp_path / "scripted.pt")
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_checkpoint_file(tmp_path / "missing.pth")


def test_prediction_dumps_go_through_the_safe_loader(tmp_path):
    import pickle

    from rle.evaluation.dump import load_predictions
    from rle.serialization import UnsafeFileError

    good = tmp_path / "predictions.pkl"
    good.write_bytes(pickle.dumps([{"pred_keypoints": np.zeros((2, 2)), "id": 3, "bbox": [1.0]}]))
    records = load_predictions(str(good))
    assert records[0]["id"] == 3 and records[0]["bbox"].shape == (1,)
    bad, marker = tmp_path / "crafted.pkl", tmp_path / "MARKER"

    class Payload:
        def __reduce__(self):
            import os

            return os.system, (f"touch {marker}",)

    bad.write_bytes(pickle.dumps([Payload()]))
    with pytest.raises(UnsafeFileError, match="system"):
        load_predictions(str(bad))
    assert not marker.exists()
    (tmp_path / "notalist.pkl").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ValueError, match="list of prediction records"):
        load_predictions(str(tmp_path / "notalist.pkl"))
