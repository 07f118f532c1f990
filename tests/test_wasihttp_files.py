"""wasi:filesystem over a route's volumes, seen by the C echo guest (``/fs/...`` paths): reads,
writes, listing, read-only volumes, no way out of a volume, and no file descriptor leaks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from wasihttp_support import CROSSINGS, proxy
from wasmgate.capabilities import DirGrant
from wasmgate.engine.engine import get_engine
from wasmgate.engine.loader import LoadedGuest, load_guest
from wasmgate.limits import Limits
from wasmgate.wasihttp import HttpRequest, ProxyHandler

ROOT = Path(__file__).resolve().parent.parent
ECHO = ROOT / "examples" / "http" / "echo-http.wasm"
SETTINGS = Limits(timeout=5.0, max_request_body=1 << 24, max_response_body=1 << 24)
# wasi:filesystem error-code cases the guest prints
LOOP, NO_ENTRY, NOT_PERMITTED, READ_ONLY = 15, 20, 31, 33


@pytest.fixture(scope="module")
def guest() -> LoadedGuest:
    return load_guest(ECHO, get_engine())


@pytest.fixture
def volume(tmp_path: Path) -> Path:
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "a.txt").write_text("hello file")
    (vol / "big.bin").write_bytes(bytes(range(256)) * 1024)
    (tmp_path / "secret").write_text("s3cret")
    os.symlink("../secret", vol / "link")
    return vol


def serve(handler: ProxyHandler, path: str, body: bytes = b"") -> bytes:
    result = handler.serve(HttpRequest("POST", path, body=body))
    assert result.status == 200, result.reason
    assert result.response is not None
    return result.response.body


@pytest.mark.parametrize("how", CROSSINGS)
def test_read_write_list(guest: LoadedGuest, volume: Path, how: str) -> None:
    handler = proxy(how, guest, SETTINGS, volumes=[DirGrant(volume, "/data")])
    assert not handler.repeatable
    assert serve(handler, "/fs/read/a.txt") == b"hello file"
    assert serve(handler, "/fs/read/big.bin") == bytes(range(256)) * 1024
    assert serve(handler, "/fs/write/new.txt", b"written") == b"wrote=7\n"
    assert (volume / "new.txt").read_bytes() == b"written"
    assert serve(handler, "/fs/list") == b"a.txt\nbig.bin\nlink\nnew.txt\n"
    assert serve(handler, "/fs/read/missing") == f"error={NO_ENTRY}\n".encode()


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/fs/read/link", LOOP),  # symbolic links are never followed
        ("/fs/read/../secret", NOT_PERMITTED),
        ("/fs/read/sub/../../secret", NOT_PERMITTED),
        ("/fs/read//etc/passwd", NOT_PERMITTED),
    ],
)
def test_no_way_out_of_a_volume(guest: LoadedGuest, volume: Path, path: str, code: int) -> None:
    handler = ProxyHandler(guest, SETTINGS, volumes=[DirGrant(volume, "/data")])
    assert serve(handler, path) == f"error={code}\n".encode()


def test_read_only_volume(guest: LoadedGuest, volume: Path) -> None:
    handler = ProxyHandler(guest, SETTINGS, volumes=[DirGrant(volume, "/data", True)])
    assert serve(handler, "/fs/read/a.txt") == b"hello file"
    assert serve(handler, "/fs/write/a.txt", b"x") == f"error={READ_ONLY}\n".encode()
    assert serve(handler, "/fs/write/other.txt", b"x") == f"error={READ_ONLY}\n".encode()
    assert (volume / "a.txt").read_text() == "hello file"
    assert not (volume / "other.txt").exists()


def test_no_volumes_no_preopens(guest: LoadedGuest) -> None:
    assert serve(ProxyHandler(guest, SETTINGS), "/fs/list") == b"error=none\n"


def test_descriptors_never_leak(guest: LoadedGuest, volume: Path) -> None:
    # the guest drops its files but never the preopened folder: the host closes it
    handler = ProxyHandler(guest, SETTINGS, volumes=[DirGrant(volume, "/data")])
    serve(handler, "/fs/read/a.txt")
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(200):
        serve(handler, "/fs/read/a.txt")
        serve(handler, "/fs/list")
    assert len(os.listdir("/proc/self/fd")) <= before
