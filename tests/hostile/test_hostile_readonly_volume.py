"""Read-only volumes in ``modules.toml`` (``{ path = "...", read_only = true }``), served: the
escape guest may read and list its volume but never create, write, rename or delete through it,
while the same directory under WAGI's string form stays read-write.

Needs the handler to preopen a volume with ``writable = not volume.read_only``
(``wagi/handler.py``); parsing alone is tested in ``tests/test_wagi_manifest.py``."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from gateway_support import Server, running_server

from .hostile_support import HOST_ENV, get, port_of

Guest = Callable[[str], Path]

# (op, path, arg): each must fail on the read-only route.
WRITES = [
    ("write", "/vol/new.txt", "x"),
    ("write", "/vol/in.txt", "overwritten"),
    ("write", "/vol/sub/new.txt", "x"),
    ("mkdir", "/vol/newdir", ""),
    ("unlink", "/vol/in.txt", ""),
    ("rename", "/vol/in.txt", "/vol/sub/moved.txt"),
    ("link", "/vol/in.txt", "/vol/hard.txt"),
    ("symlink", "in.txt", "/vol/sl"),
]


def _state(root: Path) -> list[tuple[str, str]]:
    out = []
    for top, dirs, files in os.walk(root):
        for name in sorted(dirs + files):
            p = Path(top) / name
            out.append((str(p.relative_to(root)), p.read_text() if p.is_file() else "dir"))
    return sorted(out)


def _fill(vol: Path) -> None:
    """(Re)create the volume's content: ``in.txt`` and an empty ``sub/``."""
    if vol.is_dir():
        shutil.rmtree(vol)
    vol.mkdir()
    (vol / "in.txt").write_text("inside\n")
    (vol / "sub").mkdir()


@pytest.fixture(scope="module")
def ro_site(tmp_path_factory: pytest.TempPathFactory, hostile_guest: Guest) -> Path:
    d = tmp_path_factory.mktemp("ro-volume")
    (d / "escape.wasm").write_bytes(hostile_guest("escape").read_bytes())
    _fill(d / "vol")
    (d / "modules.toml").write_text(
        '[[module]]\nroute = "/ro"\nmodule = "escape.wasm"\n'
        'volumes = { "/vol" = { path = "vol", read_only = true } }\n\n'
        '[[module]]\nroute = "/rw"\nmodule = "escape.wasm"\nvolumes = { "/vol" = "vol" }\n'
    )
    return d


@pytest.fixture(scope="module")
def ro_server(ro_site: Path, cache_dir: Path) -> Iterator[Server]:
    env = {**HOST_ENV, "WASMGATE_CACHE_DIR": str(cache_dir)}
    with running_server(ro_site / "modules.toml", "--threads", "2", env=env) as server:
        yield server


def _ask(server: Server, route: str, *args: str) -> str:
    query = "&".join(quote(a, safe="/") for a in args if a)
    r = get(port_of(server), f"{route}?{query}")
    assert r.status == 200, r
    return r.body.decode()


def test_read_only_volume_can_be_read_and_listed(ro_server: Server) -> None:
    assert _ask(ro_server, "/ro", "read", "/vol/in.txt") == "ok inside\n"
    assert sorted(_ask(ro_server, "/ro", "ls", "/vol").split()) == [
        ".",
        "..",
        "in.txt",
        "ok",
        "sub",
    ]


@pytest.mark.parametrize(("op", "path", "arg"), WRITES, ids=[" ".join(w) for w in WRITES])
def test_read_only_volume_refuses_changes(
    ro_server: Server, ro_site: Path, op: str, path: str, arg: str
) -> None:
    vol = ro_site / "vol"
    before = _state(vol)
    try:
        body = _ask(ro_server, "/ro", op, path, arg)
        assert body.startswith(f"err {op}: "), body
        assert _state(vol) == before
    finally:  # whatever happened, the next case starts from the same volume
        _fill(vol)


def test_same_directory_as_a_string_volume_is_writable(ro_server: Server, ro_site: Path) -> None:
    """WAGI's string form keeps its read-write meaning, next to the read-only table form."""
    written = ro_site / "vol" / "sub" / "written.txt"
    try:
        assert _ask(ro_server, "/rw", "write", "/vol/sub/written.txt", "hello") == "ok\n"
        assert written.read_text() == "hello"
        assert _ask(ro_server, "/ro", "read", "/vol/sub/written.txt") == "ok hello"
    finally:
        written.unlink(missing_ok=True)
