"""The Python examples in docs/embedding.md run as written (from the repository root)."""

from __future__ import annotations

import re
import shutil
import sys
import types
from pathlib import Path

import pytest
from guestbuild import build

from conftest import ROOT

DOC = ROOT / "docs" / "embedding.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def test_the_doc_has_examples() -> None:
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_example_runs(code: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The examples run from a folder that looks like the repository root, plus the
    # `plugin.wasm` that the doc's "Building guests" section tells the reader to build.
    for name in ("tests", "examples"):
        (tmp_path / name).symlink_to(ROOT / name)
    shutil.copy(build(ROOT / "tests" / "guests" / "embed_plugin.c"), tmp_path / "plugin.wasm")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WASMGATE_CACHE_DIR", str(tmp_path))
    module = types.ModuleType("embedding_doc_example")  # a real module: dataclasses need one
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(code, str(DOC), "exec"), module.__dict__)
