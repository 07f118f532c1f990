"""Build test and example guests from source, with a content-addressed cache.

Rules:
- A guest is one source file: ``.c`` (compiled by PyPI ``ziglang`` for wasm32-wasi) or ``.wat``
  (assembled by ``wasmtime.wat2wasm``). Headers (``*.h``) beside a C source are part of its key.
- The cache key is the sha256 of the toolchain identity, the flags and every input byte, so a stale
  artifact can never be served; artifacts are written to a temporary name and renamed into place, so
  a build killed half-way leaves nothing behind and parallel builders never see a torn file.
- The cache lives in ``$WASMGATE_GUEST_CACHE`` or ``<repo>/.cache/guests``.
- A C source may carry its own compiler flags, on lines of its own that start with
  ``// guestbuild:`` (e.g. ``// guestbuild: -Wl,-z,stack-size=65536``), split like a shell
  would. They come after ``C_FLAGS`` and before the caller's ``flags``, so the recipe of a guest
  travels with its source, whoever builds it (a test, a benchmark, ``examples/*/build.py``).

Usable as a module (``build(path)``) and as a command
(``python tools/guestbuild.py SRC... [-o DIR]``).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
C_FLAGS = ("-target", "wasm32-wasi", "-O2", "-s")
DIRECTIVE = "// guestbuild:"


def cache_dir() -> Path:
    env = os.environ.get("WASMGATE_GUEST_CACHE")
    return Path(env) if env else REPO / ".cache" / "guests"


def _toolchain_id(suffix: str) -> str:
    if suffix == ".c":
        return "ziglang-" + importlib.metadata.version("ziglang")
    return "wasmtime-" + importlib.metadata.version("wasmtime")


def source_flags(source: Path) -> tuple[str, ...]:
    """The compiler flags a C source asks for on its ``// guestbuild:`` lines (see the rules)."""
    if source.suffix != ".c":
        return ()
    flags: list[str] = []
    for line in source.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith(DIRECTIVE):
            flags += shlex.split(line[len(DIRECTIVE) :])
    return tuple(flags)


def _key(source: Path, flags: Sequence[str]) -> str:
    h = hashlib.sha256()
    h.update(_toolchain_id(source.suffix).encode())
    # Every flag the compiler gets is part of the key: changing C_FLAGS rebuilds everything.
    all_flags = (*C_FLAGS, *source_flags(source), *flags) if source.suffix == ".c" else flags
    h.update("\0".join(all_flags).encode())
    inputs = [source]
    if source.suffix == ".c":
        inputs += sorted(source.parent.glob("*.h"))
    for p in inputs:
        h.update(b"\0" + p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:32]


def _compile(source: Path, flags: Sequence[str], out: Path) -> None:
    if source.suffix == ".wat":
        import wasmtime

        out.write_bytes(wasmtime.wat2wasm(source.read_text()))
        return
    if source.suffix != ".c":
        raise ValueError(f"don't know how to build {source.name}")
    cmd = [
        sys.executable,
        "-m",
        "ziglang",
        "cc",
        *C_FLAGS,
        *source_flags(source),
        *flags,
        "-o",
        str(out),
        str(source),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"building {source.name} failed:\n{proc.stderr}")


def build(source: str | Path, flags: Sequence[str] = (), out: str | Path | None = None) -> Path:
    """Return the path of the built ``.wasm`` for ``source``, compiling only on a cache miss."""
    source = Path(source).resolve()
    flags = tuple(flags)
    cdir = cache_dir() / _key(source, flags)
    cdir.mkdir(parents=True, exist_ok=True)
    cached = cdir / f"{source.stem}.wasm"
    if not cached.exists():
        fd, tmp = tempfile.mkstemp(dir=cdir, suffix=".tmp.wasm")
        os.close(fd)
        try:
            _compile(source, flags, Path(tmp))
            os.replace(tmp, cached)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    if out is None:
        return cached
    dest = Path(out)
    if dest.is_dir():
        dest = dest / (source.stem + ".wasm")
    if not dest.exists() or dest.read_bytes() != cached.read_bytes():
        shutil.copyfile(cached, dest)
    return dest


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="+", type=Path)
    parser.add_argument(
        "-o", "--out-dir", type=Path, help="copy results here (default: beside source)"
    )
    parser.add_argument(
        "--flag", action="append", default=[], help="extra compiler flag (repeatable)"
    )
    args = parser.parse_args(argv)
    for src in args.sources:
        dest = args.out_dir if args.out_dir else src.with_suffix(".wasm")
        print(build(src, args.flag, dest))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
