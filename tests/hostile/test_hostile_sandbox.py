"""Sandbox escapes through both faces: the same escape guest, the same attempts, run with
``wasmgate run --dir`` and served with a WAGI volume. Symlinks pointing out of the directory are
created on the host by the test (``hostile_site``: ``vol/evil`` -> the secret beside ``vol``,
``vol/evil_rel`` -> ``../secret.txt``, ``vol/up`` -> ``..``, ``vol/abs`` -> ``/etc/passwd``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from gateway_support import Server

from .hostile_support import get

Run = Callable[..., Any]
Guest = Callable[[str], Path]

# (op, path, arg): every one must fail inside the guest and leave the host untouched.
ESCAPES = [
    ("read", "/vol/../secret.txt", ""),
    ("read", "/vol/../../../../../../etc/passwd", ""),
    ("read", "/vol/sub/../../secret.txt", ""),
    ("read", "/vol/evil", ""),
    ("read", "/vol/evil_rel", ""),
    ("read", "/vol/up/secret.txt", ""),
    ("read", "/vol/abs", ""),
    ("read", "/etc/passwd", ""),
    ("read", "/proc/self/environ", ""),
    ("ls", "/", ""),
    ("ls", "/vol/up", ""),
    ("write", "/vol/../escaped.txt", "x"),
    ("write", "/vol/evil", "overwritten"),
    ("write", "/vol/up/escaped.txt", "x"),
    ("rename", "/vol/in.txt", "/vol/../moved.txt"),
    ("rename", "/vol/in.txt", "/vol/up/moved.txt"),
    ("link", "/vol/in.txt", "/vol/../linked.txt"),
    ("linkf", "/vol/evil", "/vol/hard.txt"),
    ("linkf", "/vol/evil_rel", "/vol/hard.txt"),
    ("symlink", "/vol/in.txt", "/vol/../sl.txt"),
    ("mkdir", "/vol/up/newdir", ""),
]


def _host_state(site: Path) -> list[tuple[str, str]]:
    """Every entry under ``site`` (symlinks not followed), with the text of regular files."""
    state = []
    for top, dirs, files in os.walk(site):
        for name in sorted(dirs + files):
            p = Path(top) / name
            if p.is_symlink():
                state.append((str(p.relative_to(site)), "-> " + os.readlink(p)))
            elif p.is_file():
                state.append((str(p.relative_to(site)), p.read_text(errors="replace")))
            else:
                state.append((str(p.relative_to(site)), "dir"))
    return sorted(state)


@pytest.fixture
def run_site(tmp_path: Path) -> Path:
    """The same layout as the served volume, private to one test."""
    (tmp_path / "secret.txt").write_text("host secret\n")
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "in.txt").write_text("inside\n")
    (vol / "sub").mkdir()
    (vol / "evil").symlink_to(tmp_path / "secret.txt")
    (vol / "evil_rel").symlink_to("../secret.txt")
    (vol / "up").symlink_to("..")
    (vol / "abs").symlink_to("/etc/passwd")
    (vol / "inside_link").symlink_to("in.txt")
    return tmp_path


def _check_denied(output: str) -> None:
    assert output.startswith("err "), output
    assert "host secret" not in output
    assert "root:" not in output
    assert "do-not-leak" not in output


@pytest.mark.parametrize(("op", "path", "arg"), ESCAPES, ids=[" ".join(e) for e in ESCAPES])
def test_run_escape(
    wasmgate: Run, hostile_guest: Guest, run_site: Path, op: str, path: str, arg: str
) -> None:
    before = _host_state(run_site)
    args = [a for a in (op, path, arg) if a]
    r = wasmgate("run", "--dir", f"{run_site / 'vol'}::/vol", hostile_guest("escape"), *args)
    assert r.returncode == 0, r.stderr
    _check_denied(r.stdout.split("\n\n", 1)[1])
    assert _host_state(run_site) == before


@pytest.mark.parametrize(("op", "path", "arg"), ESCAPES, ids=[" ".join(e) for e in ESCAPES])
def test_serve_escape(
    hostile: Server, hport: int, hostile_site: Path, op: str, path: str, arg: str
) -> None:
    secret = hostile_site / "secret.txt"
    before = [*_host_state(hostile_site / "vol"), ("secret", secret.read_text())]
    query = "&".join(quote(a, safe="/") for a in (op, path, arg) if a)
    r = get(hport, f"/esc?{query}")
    assert r.status == 200
    _check_denied(r.body.decode())
    after = [*_host_state(hostile_site / "vol"), ("secret", secret.read_text())]
    assert after == before
    assert not (hostile_site / "escaped.txt").exists()
    assert not (hostile_site / "moved.txt").exists()


def test_inside_is_usable(wasmgate: Run, hostile_guest: Guest, run_site: Path, hport: int) -> None:
    """The sandbox is not just closed: symlinks that stay inside work, on both faces."""
    r = wasmgate(
        "run",
        "--dir",
        f"{run_site / 'vol'}::/vol",
        hostile_guest("escape"),
        "read",
        "/vol/inside_link",
    )
    assert r.stdout.endswith("ok inside\n")
    assert get(hport, "/esc?read&/vol/inside_link").body == b"ok inside\n"


def test_hard_link_to_a_symlink_stays_a_symlink(
    wasmgate: Run, hostile_guest: Guest, run_site: Path
) -> None:
    """``link`` without following copies the symlink itself: the new name still points out of
    the sandbox and still cannot be read (``linkf``, which would follow it, is refused above)."""
    grant = ["--dir", f"{run_site / 'vol'}::/vol"]
    r = wasmgate("run", *grant, hostile_guest("escape"), "link", "/vol/evil", "/vol/hard")
    assert r.stdout.endswith("ok\n")
    assert (run_site / "vol" / "hard").is_symlink()
    r = wasmgate("run", *grant, hostile_guest("escape"), "read", "/vol/hard")
    _check_denied(r.stdout.split("\n\n", 1)[1])


def test_read_only_dir_in_run(wasmgate: Run, hostile_guest: Guest, run_site: Path) -> None:
    grant = ["--dir-ro", f"{run_site / 'vol'}::/vol"]
    for args in (
        ("write", "/vol/new.txt", "x"),
        ("write", "/vol/in.txt", "overwrite"),
        ("rename", "/vol/in.txt", "/vol/sub/in.txt"),
        ("link", "/vol/in.txt", "/vol/sub/hard.txt"),
        ("symlink", "in.txt", "/vol/sl"),
        ("mkdir", "/vol/d"),
        ("unlink", "/vol/in.txt"),
    ):
        r = wasmgate("run", *grant, hostile_guest("escape"), *args)
        _check_denied(r.stdout.split("\n\n", 1)[1])
    assert (run_site / "vol" / "in.txt").read_text() == "inside\n"
    assert sorted(p.name for p in (run_site / "vol").iterdir()) == [
        "abs",
        "evil",
        "evil_rel",
        "in.txt",
        "inside_link",
        "sub",
        "up",
    ]


def test_serve_volumes_are_read_write_inside_only(hport: int, hostile_site: Path) -> None:
    """WAGI volumes are read-write (as in deislabs/wagi): a guest may write inside its volume,
    never beside it."""
    r = get(hport, "/esc?write&/vol/sub/written.txt&hello")
    assert r.body == b"ok\n"
    written = hostile_site / "vol" / "sub" / "written.txt"
    assert written.read_text() == "hello"
    written.unlink()


def test_env_is_only_what_is_granted(wasmgate: Run, hostile_guest: Guest, hport: int) -> None:
    r = wasmgate("run", "--env", "ONLY=this", hostile_guest("escape"), "env")
    assert r.stdout.split("\n\n", 1)[1] == "ONLY=this\n"
    body = get(hport, "/esc?env", headers="X_Secret: 1\r\nProxy: http://evil\r\n").body.decode()
    names = {line.split("=", 1)[0] for line in body.splitlines()}
    assert "do-not-leak" not in body
    assert not names & {"HOST_SECRET", "PATH", "HOME", "HTTP_PROXY", "HTTP_X_SECRET"}
    assert all(n.startswith("HTTP_") or n.isupper() for n in names)


def test_static_example_with_percent_encoding_tricks(hport: int, hostile_site: Path) -> None:
    """examples/wagi/static.c over a volume, with encoded traversal: never the secret."""
    secret = (hostile_site / "secret.txt").read_bytes()
    for target in (
        "/files/%2e%2e/secret.txt",
        "/files/%2E%2E/%2e%2e/secret.txt",
        "/files/..%2fsecret.txt",
        "/files/%2e%2e%2fsecret.txt",
        "/files/%252e%252e/secret.txt",
        "/files/hello.txt%00.png",
        "/files/%00",
        "/files/./../secret.txt",
        "/files//etc/passwd",
        "/files/%2fetc%2fpasswd",
    ):
        r = get(hport, target)
        assert r.status in (400, 404), (target, r.status)
        assert secret not in r.body
        assert b"root:" not in r.body
    assert get(hport, "/files/hello.txt").status == 200


@pytest.mark.parametrize(
    "target",
    [
        "/esc/%2e%2e/secret.txt",
        "/esc/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/esc/..%2f..%2fsecret.txt",
        "/esc/up/secret.txt",
        "/esc/evil",
        "/esc/%2fetc%2fpasswd",
    ],
)
def test_naive_file_server_is_contained(hport: int, target: str) -> None:
    """A guest that serves "/vol" + PATH_INFO with no checks at all: the decoded path reaches it,
    and only the sandbox stands between it and the host. It holds."""
    r = get(hport, f"{target}?naive")
    assert r.status == 200
    _check_denied(r.body.decode())
