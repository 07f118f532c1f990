"""Build the wasi:http example guests (C, canonical ABI by hand) into components, reproducibly.

    .venv/bin/python examples/http/build.py [--check] [SOURCE.c ...]

With no sources: every ``*.c`` here and ``examples/perf/hello-http.c``. Each ``X.c`` becomes
``X.wasm`` beside it (checked in, so the tests need no toolchain). ``--check`` rebuilds into a
temporary folder and fails if any result differs from the checked-in file.

Steps (offline once the tools are installed):
1. PyPI ``ziglang`` compiles the C to a reactor core module that imports only the proxy world's
   functions it calls (no libc calls, so no WASI preview1 adapter is needed);
2. jco's bundled ``wasm-tools`` (installed by ``examples/components/tools/setup-npm.sh``) embeds
   the ``wasi:http/proxy@0.2.12`` world, taken from the WIT files jco ships, and makes the
   component (``core2component.mjs ... --no-adapter``).
Results are cached in ``.cache/http-guests`` by the sha256 of the tools' versions and every input.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
WIT_VERSION = "0.2.12"
PACKAGES = (
    "wasi-io",
    "wasi-clocks",
    "wasi-random",
    "wasi-cli",
    "wasi-filesystem",
    "wasi-sockets",
    "wasi-http",
)
C_FLAGS = (
    "-target",
    "wasm32-wasi",
    "-mexec-model=reactor",
    "-O2",
    "-s",
    "-Wl,-z,stack-size=16384",
    "-Wl,--initial-memory=131072",
)
DEFAULT = [*sorted(HERE.glob("*.c")), REPO / "examples" / "perf" / "hello-http.c"]


def tools_dir() -> Path:
    out = subprocess.run(
        ["bash", str(REPO / "examples" / "components" / "tools" / "setup-npm.sh")],
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(out.stdout.strip())


def proxy_wit(tools: Path) -> str:
    """One WIT text: a root world including the proxy world, the WASI packages nested."""
    builtin = tools / "node_modules/@bytecodealliance/jco/lib/wit/builtin" / WIT_VERSION
    parts = [
        "package wasmgate:http-guest;\n",
        f"world guest {{\n  include wasi:http/proxy@{WIT_VERSION};\n"
        f"  import wasi:cli/environment@{WIT_VERSION};\n"
        f"  import wasi:cli/exit@{WIT_VERSION};\n"
        f"  import wasi:filesystem/preopens@{WIT_VERSION};\n}}\n",
    ]
    for pkg in PACKAGES:
        text = (builtin / pkg / "package.wit").read_text()
        head, _, body = text.partition(";")
        parts.append(f"{head.strip()} {{\n{body}\n}}\n")
    return "\n".join(parts)


def _key(source: Path, wit: str) -> str:
    h = hashlib.sha256()
    h.update(importlib.metadata.version("ziglang").encode())
    lock = REPO / "examples" / "components" / "tools" / "package-lock.json"
    for part in (
        " ".join(C_FLAGS).encode(),
        wit.encode(),
        lock.read_bytes(),
        (HERE / "build.py").read_bytes(),
        source.read_bytes(),
    ):
        h.update(b"\0" + part)
    return h.hexdigest()[:32]


def componentize(core: Path, out: Path, tools: Path, wit: str) -> None:
    """Make the core module ``core`` (imports of the proxy world only, the handler exported as
    ``wasi:http/incoming-handler@0.2.12#handle``) the component ``out``. Raises
    ``subprocess.CalledProcessError`` with the tool's output on a failure.
    examples/languages/gallery.py makes its C and Rust handlers components with this too."""
    with tempfile.TemporaryDirectory() as tmp:
        witfile = Path(tmp) / "proxy.wit"
        witfile.write_text(wit)
        cmd = [str(tools / "core2component.mjs"), str(core), str(out), "--wit", str(witfile)]
        cmd += ["--world", "guest", "--no-adapter"]
        subprocess.run(["node", *cmd], check=True, capture_output=True, text=True)


def make_component(source: Path, out: Path, tools: Path, wit: str) -> None:
    """Compile ``source`` and make it the component ``out`` (no cache; raises
    ``subprocess.CalledProcessError`` with the tool's output on a failure)."""
    with tempfile.TemporaryDirectory() as tmp:
        core = Path(tmp) / "core.wasm"
        cmd = [sys.executable, "-m", "ziglang", "cc", *C_FLAGS, "-o", str(core), str(source)]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        componentize(core, out, tools, wit)


def build(source: Path, tools: Path, wit: str) -> Path:
    """The cached component for ``source`` (built on a miss)."""
    cache = REPO / ".cache" / "http-guests" / _key(source, wit)
    out = cache / (source.stem + ".wasm")
    if out.exists():
        return out
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        made = Path(tmp) / "out.wasm"
        try:
            make_component(source, made, tools, wit)
        except subprocess.CalledProcessError as e:
            raise SystemExit(f"building {source.name} failed:\n{e.stderr}{e.stdout}") from None
        os.replace(made, out)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="*", type=Path)
    parser.add_argument("--check", action="store_true", help="fail if a checked-in file differs")
    args = parser.parse_args()
    tools = tools_dir()
    wit = proxy_wit(tools)
    failed = 0
    for source in args.sources or DEFAULT:
        built = build(source.resolve(), tools, wit)
        dest = source.with_suffix(".wasm")
        if args.check:
            same = dest.exists() and dest.read_bytes() == built.read_bytes()
            print(f"{'same' if same else 'DIFFERS'}: {dest.name}")
            failed += not same
        else:
            shutil.copyfile(built, dest)
            print(f"built {dest.name} ({dest.stat().st_size} bytes)")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
