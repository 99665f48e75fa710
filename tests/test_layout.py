"""Package layout rules: dependency direction, pure maths modules, flat tests."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _modules_after(code: str) -> set:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print('\\n'.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    return set(out.split())


def test_rle_never_imports_heads():
    mods = _modules_after("import rle, rle.coords, rle.flow, rle.losses, rle.registry")
    assert not any(m == "heads" or m.startswith("heads.") for m in mods)


def test_maths_modules_do_not_import_mmengine():
    mods = _modules_after("import rle.coords, rle.flow, rle.losses")
    assert not any(m == "mmengine" or m.startswith("mmengine.") for m in mods)
    for rel in ("rle/coords.py", "rle/flow.py", "rle/losses.py", "heads/functional.py"):
        tree = ast.parse((ROOT / rel).read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(
                n.split(".")[0] in ("mmengine", "heads")
                and rel.startswith("rle")
                or n.split(".")[0] == "mmengine"
                for n in names
            ), (rel, names)


def test_registry_imports_heads_lazily_on_build():
    code = (
        "from rle.registry import MODELS\n"
        "h = MODELS.build(dict(type='RLEHead', in_channels=4, num_keypoints=2))\n"
        "print(type(h).__module__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    assert "heads.rle_head" in out


def test_tests_are_flat():
    assert not [
        p
        for p in (ROOT / "tests").iterdir()
        if p.is_dir() and p.name not in ("data", "__pycache__")
    ]
