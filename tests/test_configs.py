"""The layered configs: every leaf config resolves to exactly the dict it did before the
monolithic ``configs/_base_`` files were split (``tests/data/resolved_configs.json``, captured
before the move), and every leaf lists a runtime, a dataset, a model and a schedule base."""

import ast
import json
from pathlib import Path

import pytest
from mmengine.config import Config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
BASE = CONFIGS / "_base_"
STORED = json.loads((Path(__file__).parent / "data" / "resolved_configs.json").read_text())
LEAVES = sorted(
    p.relative_to(ROOT).as_posix()
    for p in CONFIGS.rglob("*.py")
    if "_base_" not in p.relative_to(CONFIGS).parts
)


def canon(x):
    """The resolved dict as JSON keeps it, tuples tagged (as the stored file was written)."""
    if isinstance(x, dict):
        return {str(k): canon(v) for k, v in x.items()}
    if isinstance(x, tuple):
        return {"__tuple__": [canon(v) for v in x]}
    if isinstance(x, list):
        return [canon(v) for v in x]
    return x


def _bases(path: Path) -> list:
    """The leaf's ``_base_`` list, each entry resolved to an absolute path."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "_base_" for t in node.targets
        ):
            value = ast.literal_eval(node.value)
            value = [value] if isinstance(value, str) else value
            return [(path.parent / v).resolve() for v in value]
    return []


def test_the_leaf_configs_are_the_stored_ones():
    assert set(LEAVES) == set(STORED)


@pytest.mark.parametrize("leaf", LEAVES)
def test_leaf_resolves_to_the_stored_config(leaf):
    resolved = canon(Config.fromfile(str(ROOT / leaf)).to_dict())
    stored = STORED[leaf]
    differing = sorted(
        k for k in resolved.keys() | stored.keys() if resolved.get(k) != stored.get(k)
    )
    assert not differing, f"{leaf}: keys differing from the stored config: {differing}"
    assert resolved == stored


@pytest.mark.parametrize("leaf", LEAVES)
def test_leaf_lists_runtime_dataset_model_and_schedule(leaf):
    bases = _bases(ROOT / leaf)
    assert all(b.is_file() for b in bases), bases
    assert BASE / "default_runtime.py" in bases
    for kind in ("datasets", "models", "schedules"):
        assert any(b.parent == BASE / kind for b in bases), f"{leaf}: no _base_/{kind}/ file"
