"""The README's Python quickstart runs verbatim, and its heads table matches the registry."""

import re
from pathlib import Path

import heads
from rle.registry import MODELS

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_quickstart_runs_verbatim():
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert blocks, "README has no python block"
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    assert namespace["prediction"].coords.shape == (2, 17, 2)
    assert namespace["samples"].shape == (2, 17, 30, 2)


def test_heads_table_matches_registry():
    section = README.split("## Heads", 1)[1].split("\n## ", 1)[0]
    names = set(re.findall(r"^\| `(\w+)` \|", section, flags=re.M))
    registered = {n for n, cls in MODELS.module_dict.items() if issubclass(cls, heads.BaseHead)}
    assert names == registered


def test_first_commands_are_demo_then_test():
    commands = re.findall(r"^make ([\w-]+)", README, flags=re.MULTILINE)
    assert commands[:2] == ["demo", "test"]
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    for target in set(commands):
        assert re.search(rf"^{target}:", makefile, flags=re.MULTILINE), target
