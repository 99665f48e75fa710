"""Crash safety: ``tools/train.py`` killed with SIGKILL in the middle of an epoch or of a
checkpoint save, then ``--resume``: the final checkpoint equals an uninterrupted run's tensor
for tensor, nothing is lost, a copied work dir resumes from its own files, a truncated latest
checkpoint falls back to the previous one. Plus the pieces: the atomic writer, checkpoint
lookup, ``done.json``, the per-sample generators.

The kills come from :class:`CrashHook`, a test-only hook that the child processes import from
this module (``custom_imports``); it does nothing unless one of these environment variables is
set:

* ``RLE_TEST_KILL_AFTER_ITER=N``: SIGKILL after iteration N.
* ``RLE_TEST_KILL_IN_SAVE=N``: SIGKILL in the middle of writing the checkpoint of iteration N
  (half of it written to the temporary file).
* ``RLE_TEST_KILL_BEFORE_DELETE=N``: SIGKILL once the checkpoint of iteration N is in place and
  named in ``last_checkpoint``, before the expired one is deleted.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.hooks import Hook

from rle.registry import HOOKS

ROOT = Path(__file__).resolve().parents[1]
#: sampling-argmax: Gumbel noise from torch's global generator, a tau schedule, a warm-up by
#: iteration
BASE = ROOT / "configs/synthcoco/samplingargmax-gaussian_resnet18_1xb32-20e_synthcoco-128x96.py"
#: 4 epochs of 4 iterations (3 images, 7 people, batches of 2), a checkpoint every 3 iterations
#: (most in the middle of an epoch), validation after epochs 2 and 4
MAX_EPOCHS, ITERS, INTERVAL = 4, 16, 3


def _kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module(force=True)
class CrashHook(Hook):
    """Test only: kill this process where an environment variable says (module docstring)."""

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if os.environ.get("RLE_TEST_KILL_AFTER_ITER") == str(runner.iter + 1):
            _kill_self()

    def before_save_checkpoint(self, runner, checkpoint) -> None:
        import rle.checkpoint

        step = str(checkpoint["meta"]["iter"])
        if os.environ.get("RLE_TEST_KILL_IN_SAVE") == step:

            def half_then_die(f, data):
                f.write(data[: len(data) // 2])
                f.flush()
                os.fsync(f.fileno())
                _kill_self()

            rle.checkpoint._write_fully = half_then_die
        if os.environ.get("RLE_TEST_KILL_BEFORE_DELETE") == step:
            rle.checkpoint.AtomicLocalBackend.remove = lambda self, path: _kill_self()


def _config(tmp: Path) -> Path:
    data = tmp / "synth"
    synth = dict(num_train_images=3, num_val_images=2, image_size=(128, 96), seed=0)
    dataset = dict(data_root=str(data), synth_cfg=synth)
    loader = dict(num_workers=0, persistent_workers=False, dataset=dataset)
    ann = str(data / "annotations" / "person_keypoints_val.json")
    text = f"""
_base_ = [{str(BASE)!r}]
custom_imports = dict(imports=["tests.test_crash_resume"], allow_failed_imports=False)
custom_hooks = [dict(type="NonFiniteLossHook"), dict(type="SetEpochHook"), dict(type="CrashHook")]
model = dict(backbone=dict(model_name="test_resnet"))
train_dataloader = dict(batch_size=2, **{loader!r})
val_dataloader = dict(batch_size=4, **{loader!r})
test_dataloader = val_dataloader
val_evaluator = dict(ann_file={ann!r})
test_evaluator = val_evaluator
train_cfg = dict(max_epochs={MAX_EPOCHS}, val_interval=2)
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(interval={INTERVAL}, by_epoch=False, max_keep_ckpts=1),
)
"""
    path = tmp / "crash_cfg.py"
    path.write_text(text)
    return path


def _train(cfg: Path, work: Path, resume: bool = False, **kill) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RLE_TEST_KILL_")}
    env.update({f"RLE_TEST_{k.upper()}": str(v) for k, v in kill.items()})
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = [sys.executable, str(ROOT / "tools" / "train.py"), str(cfg), "--work-dir", str(work)]
    cmd += ["--resume"] if resume else []
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    expected = -signal.SIGKILL if kill else 0
    assert out.returncode == expected, out.stdout[-3000:] + out.stderr[-3000:]
    return out


def _tensors(path: Path) -> dict:
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    flat = {f"state_dict.{k}": v for k, v in ckpt["state_dict"].items()}
    for idx, state in ckpt["optimizer"]["state"].items():
        flat.update({f"optimizer.{idx}.{k}": v for k, v in state.items() if torch.is_tensor(v)})
    return flat


def _assert_identical(work: Path, reference: dict) -> None:
    assert (work / "last_checkpoint").read_text() == f"iter_{ITERS}.pth"
    assert json.loads((work / "done.json").read_text()) == {
        "checkpoint": f"iter_{ITERS}.pth",
        "epochs": MAX_EPOCHS,
    }
    final = _tensors(work / f"iter_{ITERS}.pth")
    assert final.keys() == reference.keys()
    differing = [k for k, v in final.items() if not torch.equal(v, reference[k])]
    assert not differing, f"{len(differing)} of {len(final)} tensors differ: {differing[:5]}"


@pytest.fixture(scope="module")
def crash_setup(tmp_path_factory):
    """The config and the uninterrupted run's final tensors."""
    tmp = tmp_path_factory.mktemp("crash")
    cfg = _config(tmp)
    _train(cfg, tmp / "uninterrupted")
    ckpts = sorted(p.name for p in (tmp / "uninterrupted").glob("*.pth"))
    assert ckpts == [f"iter_{ITERS}.pth"]  # max_keep_ckpts=1
    return tmp, cfg, _tensors(tmp / "uninterrupted" / f"iter_{ITERS}.pth")


def test_killed_mid_epoch_resumes_bit_identical_also_as_a_copy(crash_setup):
    tmp, cfg, reference = crash_setup
    work = tmp / "killed"
    _train(cfg, work, kill_after_iter=8)  # epoch 2, two batches after the checkpoint of iter 6
    assert sorted(p.name for p in work.glob("*.pth")) == ["iter_6.pth"]
    assert (work / "last_checkpoint").read_text() == "iter_6.pth"  # relative
    assert not (work / "done.json").exists()

    # a copy of the killed work dir, whose latest checkpoint is then torn (half of it, as a
    # non-atomic copy or a failing disk leaves it): it falls back to its own previous one
    copy = tmp / "copied"
    shutil.copytree(work, copy)
    data = (copy / "iter_6.pth").read_bytes()
    (copy / "iter_7.pth").write_bytes(data[: len(data) // 2])
    (copy / "last_checkpoint").write_text("iter_7.pth")
    original_files = list(work.iterdir())
    hidden = work.rename(tmp / "killed.hidden")  # the copy cannot read the original's files
    try:
        out = _train(cfg, copy, resume=True)
    finally:
        hidden.rename(work)
    log = out.stdout + out.stderr
    assert f"the latest checkpoint {copy / 'iter_7.pth'} (named in last_checkpoint)" in log
    assert f"resuming from {copy / 'iter_6.pth'}, the newest checkpoint that loads" in log
    assert "skipping its 2 trained batches" in log
    _assert_identical(copy, reference)
    assert sorted(p.name for p in work.iterdir()) == sorted(p.name for p in original_files)

    # a copied finished run evaluates its own checkpoint
    from rle.checkpoint import finished_checkpoint

    shutil.copytree(copy, tmp / "finished-copy")
    shutil.rmtree(copy)
    assert finished_checkpoint(tmp / "finished-copy") == str(tmp / "finished-copy" / "iter_16.pth")


def test_killed_mid_save_loses_nothing_and_resumes_bit_identical(crash_setup):
    tmp, cfg, reference = crash_setup
    work = tmp / "killed-saving"
    _train(cfg, work, kill_in_save=12)
    # the previous checkpoint is intact and named; the torn save is only a temporary file
    assert sorted(p.name for p in work.glob("*.pth")) == ["iter_9.pth"]
    assert (work / "last_checkpoint").read_text() == "iter_9.pth"
    (torn,) = [p for p in work.iterdir() if p.name.startswith(".iter_12.pth.")]
    assert 0 < torn.stat().st_size < (work / "iter_9.pth").stat().st_size
    state = torch.load(work / "iter_9.pth", map_location="cpu", weights_only=False)
    assert state["meta"]["iter"] == 9

    _train(cfg, work, resume=True)
    _assert_identical(work, reference)
    assert not [p for p in work.iterdir() if p.name.endswith(".tmp")]  # cleaned up


def test_killed_before_deleting_the_expired_checkpoint(crash_setup):
    tmp, cfg, reference = crash_setup
    work = tmp / "killed-deleting"
    # iteration 12 ends epoch 3: the resumed run starts with an epoch that has nothing left
    _train(cfg, work, kill_before_delete=12)
    assert sorted(p.name for p in work.glob("*.pth")) == ["iter_12.pth", "iter_9.pth"]
    assert (work / "last_checkpoint").read_text() == "iter_12.pth"
    out = _train(cfg, work, resume=True)
    assert "skipping its 4 trained batches" in out.stdout + out.stderr
    _assert_identical(work, reference)
    assert sorted(p.name for p in work.glob("*.pth")) == [f"iter_{ITERS}.pth"]  # no leftover


# ------------------------------------------------------------------------------ the pieces


def test_atomic_write_replaces_whole_files_or_nothing(tmp_path, monkeypatch):
    import rle.checkpoint as ck

    target = tmp_path / "sub" / "file.bin"
    ck.atomic_write_bytes(target, b"first")
    ck.atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"x")
    assert target.stat().st_mode == plain.stat().st_mode  # umask-respecting, not mkstemp's 0600

    def fail(f, data):
        f.write(data[:3])
        raise OSError("disk full")

    monkeypatch.setattr(ck, "_write_fully", fail)
    with pytest.raises(OSError, match="disk full"):
        ck.atomic_write_bytes(target, b"third")
    assert target.read_bytes() == b"second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.bin"]  # no temp left
    with pytest.raises(TypeError, match="data must be bytes"):
        ck.atomic_write_bytes(target, "text")
    with pytest.raises(TypeError, match="path must be a non-empty path"):
        ck.atomic_write_bytes("", b"")


def test_checkpoint_entries_are_relative_and_old_absolute_ones_resolve(tmp_path):
    from rle.checkpoint import checkpoint_entry, resolve_checkpoint

    work, other = tmp_path / "work", tmp_path / "other"
    work.mkdir()
    other.mkdir()
    assert checkpoint_entry(work, work / "iter_3.pth") == "iter_3.pth"
    assert checkpoint_entry(work, other / "iter_3.pth") == str(other / "iter_3.pth")
    assert resolve_checkpoint(work, "iter_3.pth") == str(work / "iter_3.pth")
    assert resolve_checkpoint(work, str(work / "iter_3.pth")) == str(work / "iter_3.pth")
    # an absolute entry into another folder: the original's file, unless the work dir holds a
    # file of that name (a copied work dir of the old format)
    assert resolve_checkpoint(work, str(other / "iter_3.pth")) == str(other / "iter_3.pth")
    (work / "iter_3.pth").write_bytes(b"")
    assert resolve_checkpoint(work, str(other / "iter_3.pth")) == str(work / "iter_3.pth")
    with pytest.raises(ValueError, match="entry must be a non-empty path"):
        resolve_checkpoint(work, " ")


def _fake_checkpoint(path: Path, step: int) -> None:
    torch.save(dict(meta=dict(iter=step), state_dict=dict(w=torch.full((3,), float(step)))), path)


def test_resume_lookup_falls_back_to_the_newest_checkpoint_that_loads(tmp_path, caplog):
    import logging

    from rle.checkpoint import find_resumable_checkpoint

    logger = logging.getLogger("rle-test-resume")
    assert find_resumable_checkpoint(tmp_path, logger=logger) is None  # a fresh start
    for step in (2, 4, 10):
        _fake_checkpoint(tmp_path / f"iter_{step}.pth", step)
    (tmp_path / "last_checkpoint").write_text("iter_10.pth")
    assert find_resumable_checkpoint(tmp_path, logger=logger) == str(tmp_path / "iter_10.pth")

    data = (tmp_path / "iter_10.pth").read_bytes()
    (tmp_path / "iter_10.pth").write_bytes(data[: len(data) // 2])
    torch.save(dict(w=torch.zeros(1)), tmp_path / "published_20.pth")  # weights only: skipped
    with caplog.at_level(logging.WARNING, logger="rle-test-resume"):
        found = find_resumable_checkpoint(tmp_path, logger=logger)
    assert found == str(tmp_path / "iter_4.pth")  # by the step in the name, not the mtime
    assert str(tmp_path / "iter_10.pth") in caplog.text and str(found) in caplog.text

    (tmp_path / "last_checkpoint").unlink()  # killed before the first last_checkpoint
    assert find_resumable_checkpoint(tmp_path, logger=logger) == str(tmp_path / "iter_4.pth")

    for step in (2, 4):
        (tmp_path / f"iter_{step}.pth").write_bytes(b"not a zip")
    (tmp_path / "last_checkpoint").write_text(str(tmp_path / "gone.pth"))
    with pytest.raises(RuntimeError, match="no checkpoint there can be loaded") as err:
        find_resumable_checkpoint(tmp_path, logger=logger)
    assert "gone.pth: missing" in str(err.value) and "iter_4.pth" in str(err.value)


def test_done_json_names_the_checkpoint_relative_or_says_there_is_none(tmp_path):
    from rle.checkpoint import finished_checkpoint
    from rle.compare.runs import RunSpec
    from rle.engine import mark_finished

    work = tmp_path / "work"
    work.mkdir()
    mark_finished(work, 3)  # training saved no checkpoint: marked, with nothing to evaluate
    assert json.loads((work / "done.json").read_text()) == {"checkpoint": None, "epochs": 3}
    with pytest.raises(ValueError, match="finished without saving a checkpoint"):
        _ = RunSpec("run", tmp_path / "cfg.py", work).checkpoint

    _fake_checkpoint(work / "epoch_3.pth", 3)
    (work / "last_checkpoint").write_text(str(work / "epoch_3.pth"))  # mmengine's absolute form
    mark_finished(str(work), 3)
    assert json.loads((work / "done.json").read_text())["checkpoint"] == "epoch_3.pth"
    assert RunSpec("run", tmp_path / "cfg.py", work).checkpoint == str(work / "epoch_3.pth")
    # an old absolute done.json is still read
    (work / "done.json").write_text(json.dumps(dict(checkpoint=str(work / "epoch_3.pth"))))
    assert finished_checkpoint(work) == str(work / "epoch_3.pth")
    (work / "epoch_3.pth").unlink()
    with pytest.raises(FileNotFoundError, match="epoch_3.pth is missing"):
        finished_checkpoint(work)
    with pytest.raises(FileNotFoundError, match="has not finished"):
        finished_checkpoint(tmp_path)


def test_keyed_sampler_carries_seed_epoch_and_skips_once():
    from mmengine.dataset import DefaultSampler, InfiniteSampler

    from rle.datasets.sampler import KeyedSampler, SampleKey

    inner = DefaultSampler(list(range(5)), shuffle=True, seed=3)
    keyed = KeyedSampler(inner, seed=7)
    keyed.set_epoch(2)
    first = list(keyed)
    assert len(keyed) == 5 and all(isinstance(k, SampleKey) for k in first)
    assert [k.index for k in first] == list(inner)
    assert {(k.seed, k.epoch) for k in first} == {(7, 2)}
    keyed.skip_next(3)
    assert list(keyed) == first[3:] and list(keyed) == first  # the skip applies once
    endless = iter(KeyedSampler(InfiniteSampler(list(range(4)), seed=0), seed=0))
    assert [next(endless).epoch for _ in range(9)] == [0] * 4 + [1] * 4 + [2]  # one per pass
    with pytest.raises(ValueError, match=r"seed must be in \[0, 2\*\*64\)"):
        KeyedSampler(inner, seed=-1)
    with pytest.raises(TypeError, match="count must be an int"):
        keyed.skip_next(1.5)


def test_a_sample_is_a_function_of_seed_epoch_and_index(tmp_path):
    from mmengine.config import Config

    from rle.datasets.sampler import SampleKey, sample_rng
    from rle.registry import DATASETS

    cfg = Config.fromfile(str(_config(tmp_path)))
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    assert len(dataset) == 7

    def sample(key):
        out = dataset[key]
        return out["inputs"].numpy(), out["data_samples"].keypoint_labels.numpy()

    def same(a, b):
        return all(np.array_equal(x, y) for x, y in zip(a, b))

    for index in range(len(dataset)):
        key = SampleKey(0, 1, index)
        assert same(sample(key), sample(key))  # in any process, at any time
    draws = [sample(SampleKey(0, 1, 0)), sample(SampleKey(0, 2, 0)), sample(SampleKey(1, 1, 0))]
    assert not same(draws[0], draws[1]) and not same(draws[0], draws[2])
    # sample_rng is default_rng([seed, epoch, index])
    assert sample_rng(0, 1, 2).random() == np.random.default_rng([0, 1, 2]).random()
    with pytest.raises(ValueError, match=r"epoch must be in \[0, 2\*\*64\)"):
        sample_rng(0, -1, 0)


def test_model_side_draws_are_a_function_of_seed_and_iteration():
    import random

    from rle.checkpoint import seed_global_rngs

    def draws(seed, iteration):
        seed_global_rngs(seed, iteration)
        return torch.rand(4).tolist(), np.random.rand(), random.random()

    assert draws(0, 5) == draws(0, 5)
    assert draws(0, 5) != draws(0, 6) and draws(0, 5) != draws(1, 5)
    with pytest.raises(TypeError, match="iteration must be an int"):
        seed_global_rngs(0, 1.0)
