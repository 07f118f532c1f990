"""Telling guests apart by content, and loading from bytes/text."""

from __future__ import annotations

import pytest

from wasmgate import LoadError, load
from wasmgate.engine import detect_kind


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"\x00asm\x01\x00\x00\x00", "module"),
        (b"\x00asm\x0d\x00\x01\x00", "component"),
        (b"\x7fELF\x02\x01\x01", "precompiled"),
        (b"(module)", "wat"),
        (b"  ;; comment\n(module)", "wat"),
        (b"(; block ;) (component)", "wat"),
    ],
)
def test_detect_kind(data: bytes, kind: str) -> None:
    assert detect_kind(data) == kind


@pytest.mark.parametrize("data", [b"", b"MZ\x90\x00", b"#!/bin/sh\n", b"\x00as"])
def test_detect_kind_rejects(data: bytes) -> None:
    with pytest.raises(LoadError):
        detect_kind(data)


def test_load_bytes_and_wat_component() -> None:
    guest = load(b"(component)")
    assert guest.kind == "component"
    mod = load(b'(module (func (export "f")))')
    assert mod.kind == "module"
    assert mod.core().exports[0].name == "f"
    with pytest.raises(LoadError, match="is a core module"):
        mod.as_component()
