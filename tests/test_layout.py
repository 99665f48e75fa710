"""Package layout rules: dependency direction, pure maths modules, flat tests."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: the pure maths: torch (and nflows) only, no mmengine
MATHS = ["rle/coords.py", "rle/flow.py", "rle/losses.py"] + sorted(
    str(p.relative_to(ROOT)) for p in (ROOT / "heads" / "functional").glob("*.py")
)


def _modules_after(code: str) -> set:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print('\\n'.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    return set(out.split())


def _top_level_imports(rel: str) -> set:
    """The top-level package of every import statement of the file ``rel``."""
    names = set()
    for node in ast.walk(ast.parse((ROOT / rel).read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add((node.module or "").split(".")[0])
    return names


def test_no_module_of_rle_imports_heads():
    # every module of rle, discovered (a new subpackage is covered without editing this test),
    # imported in a fresh interpreter: heads must not be among the loaded modules
    code = (
        "import importlib, pkgutil, rle\n"
        "def fail(name):\n"  # walk_packages would skip a subpackage that fails to import
        "    raise ImportError(f'cannot import {name}')\n"
        "names = [m.name for m in pkgutil.walk_packages(rle.__path__, 'rle.', onerror=fail)]\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "print('\\n'.join('rle-module:' + n for n in names))"
    )
    mods = _modules_after(code)
    imported = {m.split(":", 1)[1] for m in mods if m.startswith("rle-module:")}
    # the discovery really walked the tree (subpackages and their modules)
    assert {"rle.coords", "rle.models.topdown", "rle.datasets.transforms"} <= imported
    assert any(m.startswith("rle.evaluation.") for m in imported)
    leaked = sorted(m for m in mods if m == "heads" or m.startswith("heads."))
    assert not leaked, f"importing every module of rle loaded {leaked}"


def test_maths_modules_do_not_import_mmengine():
    mods = _modules_after("import rle.coords, rle.flow, rle.losses")
    assert not any(m == "mmengine" or m.startswith("mmengine.") for m in mods)
    assert "heads/functional/sampling.py" in MATHS
    for rel in MATHS:
        forbidden = {"mmengine", "heads"} if rel.startswith("rle/") else {"mmengine"}
        assert not _top_level_imports(rel) & forbidden, rel


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


def _sources(*folders):
    return sorted(p for f in folders for p in (ROOT / f).rglob("*.py"))


def test_tools_are_thin_and_library_files_bounded():
    # a tool is argument parsing plus one library call; library modules stay readable
    long_tools = {
        p.name: n for p in _sources("tools") if (n := len(p.read_text().splitlines())) >= 120
    }
    assert not long_tools, f"tools over 120 lines: {long_tools}"
    long_modules = {
        str(p.relative_to(ROOT)): n
        for p in _sources("rle", "heads")
        if (n := len(p.read_text().splitlines())) > 600
    }
    assert not long_modules, f"library files over 600 lines: {long_modules}"


def test_nothing_edits_sys_path():
    # the package is installed (make installs it editable): no script patches the import path
    offenders = [
        str(p.relative_to(ROOT))
        for p in _sources("rle", "heads", "tools", "benchmarks", "tests")
        if "sys.path.insert" in p.read_text() or "sys.path.append" in p.read_text()
    ]
    assert offenders == [str(Path(__file__).relative_to(ROOT))]  # this test names the calls
