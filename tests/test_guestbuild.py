"""tools/guestbuild.py: a C source's own flags (``// guestbuild:`` lines) and the cache key."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import wasmtime

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools"))

import guestbuild  # noqa: E402

HELLO = """#include <stdio.h>
int main(void) { fputs("hi\\n", stdout); return 0; }
"""


def _initial_pages(wasm: Path) -> int:
    module = wasmtime.Module.from_file(wasmtime.Engine(), str(wasm))
    (memory,) = [e.type for e in module.exports if isinstance(e.type, wasmtime.MemoryType)]
    return memory.limits.min


def test_source_flags_are_read_from_directive_lines(tmp_path: Path) -> None:
    source = tmp_path / "g.c"
    source.write_text(
        "// a guest\n"
        "// guestbuild: -Wl,-z,stack-size=65536 '-DNAME=two words'\n"
        "//   guestbuild: -DNOT_A_DIRECTIVE\n"
        "// guestbuild: -DMORE\n" + HELLO
    )
    assert guestbuild.source_flags(source) == (
        "-Wl,-z,stack-size=65536",
        "-DNAME=two words",
        "-DMORE",
    )
    assert guestbuild.source_flags(tmp_path / "none.wat") == ()


def test_directive_reaches_the_compiler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WASMGATE_GUEST_CACHE", str(tmp_path / "cache"))
    plain = tmp_path / "plain.c"
    plain.write_text(HELLO)
    small = tmp_path / "small.c"
    small.write_text("// guestbuild: -Wl,-z,stack-size=65536\n" + HELLO)
    # zig cc's default stack is 16 MiB; the directive's is 64 KiB.
    assert _initial_pages(guestbuild.build(plain)) > 256
    assert _initial_pages(guestbuild.build(small)) <= 4


def test_every_compiler_flag_is_in_the_cache_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "g.c"
    source.write_text(HELLO)
    key = guestbuild._key(source, ())
    monkeypatch.setattr(guestbuild, "C_FLAGS", (*guestbuild.C_FLAGS, "-DOTHER"))
    assert guestbuild._key(source, ()) != key  # a changed default flag never serves old builds


def test_example_guests_start_small() -> None:
    """The WAGI examples are linked with a 64 KiB stack, so their whole memory stays within what
    the instance pool keeps resident (examples/wagi/README.md)."""
    for source in sorted((REPO / "examples" / "wagi").glob("*.c")):
        assert "-Wl,-z,stack-size=65536" in guestbuild.source_flags(source), source.name
    assert _initial_pages(guestbuild.build(REPO / "examples" / "wagi" / "hello.c")) <= 4
