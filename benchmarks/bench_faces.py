"""One sandbox, measured: each face x each limit -> what it reports and how long it took.

Faces: ``wasmgate run`` and ``wasmgate call`` (subprocesses), ``wasmgate serve`` (a real server on
loopback), the embedding API for core modules and for components (in process; the component
asleep in a host call is ``tests/guests/p2_sleeper.wat`` in WASI preview2's ``poll``). Limits:
a guest spinning in wasm past ``timeout``, one asleep in a host call past it (and returning at
once when woken), one spinning past its ``fuel``, and two at the ``max_memory`` cap: one
handling the refused grow (exit with pages grown / 64 = 15), one dividing by zero there.

Times for the CLI faces include the process start-up, shown in its own row. Usage:
``.venv/bin/python benchmarks/bench_faces.py`` (prints a Markdown table).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import wasmgate
from wasmgate.errors import EXIT_STATUS, GuestExit, GuestTrap, LimitExceeded, WasmgateError
from wasmgate.limits import CLI_NAMES, Limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import free_port

ROOT = Path(__file__).resolve().parent.parent
GUESTS = ROOT / "tests" / "guests"
CASES = {
    "timeout, spinning in wasm": ("spin", {"timeout": 1.0}),
    "timeout, asleep in a host call": ("sleep", {"timeout": 1.0}),
    "fuel": ("spin", {"fuel": 1_000_000}),
    "memory cap, guest handles the refused grow": ("grow_exit", {"max_memory": "64MiB"}),
    "memory cap, guest traps": ("grow_divzero", {"max_memory": "64MiB"}),
}
WASMGATE = [sys.executable, "-m", "wasmgate"]


def command(folder: Path, export: str) -> Path:
    path = folder / f"{export}.wat"
    if not path.exists():
        text = (GUESTS / "faces_core.wat").read_text()
        path.write_text(text.replace(";; START", f'(export "_start" (func ${export}))'))
    return path


def timed(fn: Callable[[], str]) -> str:
    started = time.monotonic()
    result = fn()
    return f"{result} ({time.monotonic() - started:.2f} s)"


def cli_status(code: int, stderr: str) -> str:
    kind = {v: k for k, v in EXIT_STATUS.items()}.get(code)
    if kind == "trap":
        return f"{code} (" + stderr.split("guest trapped: ", 1)[1].splitlines()[0] + ")"
    return f"{code}" + (f" ({kind})" if kind in ("timeout", "fuel", "memory") else "")


def error_text(err: BaseException) -> str:
    if isinstance(err, LimitExceeded):
        return f"LimitExceeded('{err.kind}')"
    if isinstance(err, GuestExit):
        return f"GuestExit({err.code})"
    if isinstance(err, GuestTrap):
        return f"GuestTrap('{err.kind}')"
    return repr(err)


def main() -> None:
    env = {**os.environ, "WASMGATE_CACHE_DIR": tempfile.mkdtemp(prefix="wasmgate-bench-")}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        toml = folder / "modules.toml"
        entries = []
        for i, (export, limits) in enumerate(CASES.values()):
            lines = [f'[[module]]\nroute = "/c{i}"\nmodule = "{command(folder, export)}"']
            lines += [f"{k} = {v!r}".replace("'", '"') for k, v in limits.items()]
            entries.append("\n".join(lines))
        toml.write_text("\n\n".join(entries) + "\n")
        port = free_port()
        server = subprocess.Popen(
            [*WASMGATE, "serve", "-c", str(toml), "-l", f"127.0.0.1:{port}", "--workers", "1"],
            env=env,
            stderr=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    urllib.request.urlopen(base + "/healthz", timeout=1)
                    break
                except OSError:
                    time.sleep(0.1)
            rows = []
            startup = timed(
                lambda: str(
                    subprocess.run(
                        [*WASMGATE, "--version"], env=env, capture_output=True
                    ).returncode
                )
            )
            for i, (name, (export, limits)) in enumerate(CASES.items()):
                path = command(folder, export)
                flags = [f"{CLI_NAMES[k]}={v}" for k, v in limits.items()]

                def cli(*args: str) -> str:
                    r = subprocess.run([*WASMGATE, *args], env=env, capture_output=True)
                    return cli_status(r.returncode, r.stderr.decode())

                def served(route: str = f"/c{i}") -> str:
                    try:
                        with urllib.request.urlopen(base + route, timeout=30) as r:
                            return str(r.status)
                    except urllib.error.HTTPError as e:
                        return str(e.code)

                def embed_core(
                    export: str = export, limits: dict[str, object] = limits, path: Path = path
                ) -> str:
                    inst = wasmgate.instantiate(path, limits=Limits(**limits))  # type: ignore[arg-type]
                    try:
                        inst.call(export)
                    except WasmgateError as e:
                        return error_text(e)
                    return "returned"

                def embed_component(
                    export: str = export, limits: dict[str, object] = limits
                ) -> str:
                    name = {"grow_exit": "grow-pages", "grow_divzero": "grow-divzero"}.get(
                        export, export
                    )
                    guest, args = GUESTS / "faces_component.wat", ()
                    if export == "sleep":  # 10 s in wasi:io/poll (WASI preview2)
                        guest, args = GUESTS / "p2_sleeper.wat", (10_000_000_000,)
                    inst = wasmgate.instantiate_component(
                        guest,
                        limits=Limits(**limits),  # type: ignore[arg-type]
                    )
                    try:
                        result = inst.exports[name](*args)
                    except WasmgateError as e:
                        return error_text(e)
                    return f"returned {result}"

                rows.append(
                    [
                        name,
                        timed(lambda f=flags, p=path: cli("run", *f, str(p))),
                        timed(lambda f=flags, p=path, e=export: cli("call", *f, str(p), e)),
                        timed(served),
                        timed(embed_core),
                        timed(embed_component),
                    ]
                )
        finally:
            server.terminate()
            server.wait(30)
    print("| limit | run (exit) | call (exit) | serve (HTTP) | embed core | embed component |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(f"| (process start-up, `wasmgate --version`) | {startup} | | | | |")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
