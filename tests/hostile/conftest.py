"""Hostile-input suite: guests built from ``tests/hostile/guests``, one shared server, raw HTTP.

The shared server (``hostile``) runs ``wasmgate serve --workers 1 --threads 2`` with short
connection-guard timeouts (1 s) so slow-client tests stay fast. Its routes:

=====================  ==========================================================================
``/good``              hog.wasm, default limits: ``?ok`` answers 200 "ok"
``/hog``               hog.wasm, 500 ms, 32 MiB, 1 MiB responses: ``?MODE[&ARG]`` misbehaves
``/esc/...``           escape.wasm with the volume ``/vol`` = ``site/vol`` (secrets beside it)
``/files/...``         examples/wagi/static.wasm over ``site/public`` (a real file server)
``/small``             hog.wasm, ``max_request_body = 1KiB``
``/out/NAME``          WAT guests printing fixed (mostly invalid) CGI output: ``OUTPUTS``
``/exit/CODE``         WAT guests calling ``proc_exit(CODE)``
``/start-trap``        a module whose start function traps
``/no-import``         a module importing a function the host does not provide
``/bigdata``           a module with a 100 MiB data segment that answers from it
``/bigdata-small``     the same module under ``max_memory = 64MiB``
=====================  ==========================================================================
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from guestbuild import build

from gateway_support import Server, running_server, wat_guest

from .hostile_support import (
    EXAMPLES,
    EXIT_CODES,
    GUESTS,
    HOG_TIMEOUT,
    HOST_ENV,
    NO_IMPORT_WAT,
    OUTPUT_REPEAT,
    OUTPUTS,
    START_TRAP_WAT,
    big_data_module,
    exit_wat,
    guard_args,
    port_of,
)


@pytest.fixture(scope="session")
def hostile_guest() -> Callable[[str], Path]:
    """``hostile_guest("hog")`` -> tests/hostile/guests/hog.{c,wat} built to wasm (cached)."""

    def get(name: str) -> Path:
        for suffix in (".c", ".wat"):
            src = GUESTS / f"{name}{suffix}"
            if src.exists():
                return build(src)
        raise FileNotFoundError(f"no hostile guest source named {name}")

    return get


# --- the shared site and server ----------------------------------------------------------------


@pytest.fixture(scope="session")
def hostile_site(
    tmp_path_factory: pytest.TempPathFactory, hostile_guest: Callable[[str], Path]
) -> Path:
    d = tmp_path_factory.mktemp("hostile-site")
    shutil.copy(hostile_guest("hog"), d / "hog.wasm")
    shutil.copy(hostile_guest("escape"), d / "escape.wasm")
    shutil.copy(build(EXAMPLES / "static.c"), d / "static.wasm")
    shutil.copytree(EXAMPLES / "public", d / "public")
    (d / "secret.txt").write_text("host secret\n")
    vol = d / "vol"
    vol.mkdir()
    (vol / "in.txt").write_text("inside\n")
    (vol / "sub").mkdir()
    (vol / "evil").symlink_to(d / "secret.txt")
    (vol / "evil_rel").symlink_to("../secret.txt")
    (vol / "up").symlink_to("..")
    (vol / "abs").symlink_to("/etc/passwd")
    (vol / "inside_link").symlink_to("in.txt")
    (d / "bigdata.wasm").write_bytes(big_data_module(100 << 20))
    for name, output in OUTPUTS.items():
        (d / f"out-{name}.wat").write_text(wat_guest(output, repeat=OUTPUT_REPEAT.get(name, 1)))
    for code in EXIT_CODES:
        (d / f"exit{code}.wat").write_text(exit_wat(code))
    (d / "start-trap.wat").write_text(START_TRAP_WAT)
    (d / "no-import.wat").write_text(NO_IMPORT_WAT)
    hog_limits = f'timeout = "{int(HOG_TIMEOUT * 1000)}ms"\nmax_memory = "32MiB"\n'
    hog_limits += 'max_response_body = "1MiB"\n'
    entries = [
        ("/good", "hog.wasm", ""),
        ("/hog", "hog.wasm", hog_limits),
        ("/hog-capped", "hog.wasm", hog_limits + "max_concurrency = 1\n"),
        ("/esc/...", "escape.wasm", 'volumes = { "/vol" = "vol" }\n'),
        ("/files/...", "static.wasm", 'volumes = { "/static" = "public" }\n'),
        ("/small", "hog.wasm", 'max_request_body = "1KiB"\n'),
        ("/start-trap", "start-trap.wat", ""),
        ("/no-import", "no-import.wat", ""),
        ("/bigdata", "bigdata.wasm", ""),
        ("/bigdata-small", "bigdata.wasm", 'max_memory = "64MiB"\n'),
    ]
    entries += [
        (f"/out/{name}", f"out-{name}.wat", 'max_response_body = "1MiB"\n') for name in OUTPUTS
    ]
    entries += [(f"/exit/{code}", f"exit{code}.wat", "") for code in EXIT_CODES]
    (d / "modules.toml").write_text(
        "".join(f'[[module]]\nroute = "{r}"\nmodule = "{m}"\n{extra}\n' for r, m, extra in entries)
    )
    return d


@pytest.fixture(scope="session")
def hostile(hostile_site: Path, cache_dir: Path) -> Iterator[Server]:
    env = {**HOST_ENV, "WASMGATE_CACHE_DIR": str(cache_dir)}
    args = ("--workers", "1", "--threads", "2", "--queue", "32", *guard_args())
    with running_server(hostile_site / "modules.toml", *args, env=env) as server:
        yield server


@pytest.fixture(scope="session")
def hport(hostile: Server) -> int:
    return port_of(hostile)
