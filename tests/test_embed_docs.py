"""The Python examples in docs/embedding.md run as written (from the repository root)."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

from conftest import ROOT

DOC = ROOT / "docs" / "embedding.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def test_the_doc_has_examples() -> None:
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_example_runs(code: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("WASMGATE_CACHE_DIR", str(tmp_path))
    module = types.ModuleType("embedding_doc_example")  # a real module: dataclasses need one
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(code, str(DOC), "exec"), module.__dict__)
