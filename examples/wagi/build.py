"""Build every example WAGI guest in this folder, writing each ``.wasm`` beside its source.

Usage, from any directory (use the interpreter that has ``ziglang`` and ``wasmtime``, e.g. the
repository's ``.venv/bin/python`` after ``bash tools/setup.sh``)::

    .venv/bin/python examples/wagi/build.py

``NAME.c`` becomes ``NAME.wasm`` and ``NAME.wat`` becomes ``NAME-wat.wasm`` (so ``hello.c`` and
``hello.wat`` do not collide). Compilation goes through ``tools/guestbuild.py``, whose cache is
keyed on the toolchain, the flags and every source byte: a second run compiles nothing and only
rewrites a ``.wasm`` whose bytes differ, so it is idempotent and fast.
"""

from __future__ import annotations

import importlib.util
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "tools"))

import guestbuild  # noqa: E402  (found through the path set just above)


def output_for(source: Path) -> Path:
    suffix = "-wat.wasm" if source.suffix == ".wat" else ".wasm"
    return source.with_name(source.stem + suffix)


def build_one(source: Path) -> Path:
    return guestbuild.build(source, out=output_for(source))


def main() -> int:
    missing = [pkg for pkg in ("ziglang", "wasmtime") if importlib.util.find_spec(pkg) is None]
    if missing:
        print(
            f"error: {sys.executable} lacks {' and '.join(missing)}; run `bash tools/setup.sh`"
            " and build with .venv/bin/python",
            file=sys.stderr,
        )
        return 2
    sources = sorted([*HERE.glob("*.c"), *HERE.glob("*.wat")])
    # Each compile is a separate zig process, so threads build them in parallel.
    with ThreadPoolExecutor() as pool:
        futures = {source: pool.submit(build_one, source) for source in sources}
    failed = 0
    for source, future in futures.items():
        try:
            print(future.result().relative_to(REPO))
        except Exception as exc:
            failed += 1
            print(f"error: {source.name}: {exc}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
