"""The language gallery's guests: what each language folder holds, and how to build it, cached.

``build.py`` beside this file is the command; ``plugins.py``, the tests and
``benchmarks/bench_languages.py`` import this module (as ``gallery``, a name no package takes).
Usage of the command, with the interpreter that has ``ziglang`` and ``wasmtime``
(``bash tools/setup.sh``)::

    .venv/bin/python examples/languages/build.py              # every language it can build
    .venv/bin/python examples/languages/build.py rust go      # some of them
    .venv/bin/python examples/languages/build.py --strict     # a missing toolchain is an error
    .venv/bin/python examples/languages/build.py --demo DIR   # also write DIR/modules.toml (below)

Each language folder gets ``handler.wasm`` (a WAGI handler) and, for C, Rust and AssemblyScript,
``plugin.wasm`` (an embedding plugin), next to the sources; the ``.wasm`` files are not committed.
The ``http-<language>`` folders hold wasi:http handlers: their ``handler.wasm`` is a component.

Toolchains, all from the registries these machines reach (``tools/install-toolchains.sh`` installs
the Debian ones):

- C, C++, Zig: PyPI ``ziglang`` (``zig cc``, ``zig c++``, ``zig build-exe``), target wasm32-wasi;
- Rust: Debian's ``rustc``/``cargo`` 1.63 with ``libstd-rust-dev-wasm32`` (target wasm32-wasi);
- Go: Go 1.23 from Debian's bookworm-backports (``GOOS=wasip1 GOARCH=wasm``);
- AssemblyScript: npm ``assemblyscript`` and ``@assemblyscript/wasi-shim``, pinned by
  ``assemblyscript/package-lock.json`` and installed with ``npm ci`` into the cache on first use;
- WAT: ``wasmtime.wat2wasm`` (PyPI ``wasmtime``);
- wasi:http components, with the builds of ``examples/http/``: C (``ziglang``, then the
  ``wasm-tools`` bundled in npm ``jco``, as ``examples/http/build.py`` does), Rust (Debian's
  cargo for ``wasm32-unknown-unknown``, then the same ``wasm-tools`` step), Zig (``ziglang`` for
  ``wasm32-freestanding``, the same step), Python (PyPI ``componentize-py``,
  ``examples/http/python/build.sh``) and JavaScript (npm ``componentize-js``,
  ``examples/http/js/build.sh``). The npm tools and componentize-py's own venv are installed on
  first use under ``<repo>/.cache`` (``examples/components/tools/setup-*.sh``).

The cache (``$WASMGATE_GUEST_CACHE`` or ``<repo>/.cache/guests``, shared with
``tools/guestbuild.py``) is keyed on the sha256 of the toolchain's identity (its version output),
the build commands (the compile function's code) and every input file of the language's folder,
so an edit, a flag or a new compiler version rebuilds and nothing else does. Results are written
under a temporary name and renamed into place, so an interrupted build leaves nothing behind.

A language whose toolchain is absent is skipped with the reason (``--strict``, or ``CI=true`` in
the environment, turns that into a failure). ``--demo DIR`` writes ``DIR/modules.toml``: the
handlers that were built under ``/lang/<language>``, an index page at ``/lang/`` that lists them
and names what was skipped, then every route of ``examples/wagi/modules.toml``; ``tools/demo.sh``
serves it.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import importlib.metadata
import importlib.util
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "tools"))

import guestbuild  # noqa: E402  (found through the path set just above)

RUSTC = os.environ.get("WASMGATE_RUSTC", "/usr/bin/rustc")
CARGO = os.environ.get("WASMGATE_CARGO", "/usr/bin/cargo")
GO_CANDIDATES = (os.environ.get("WASMGATE_GO", ""), "/usr/lib/go-1.23/bin/go", "go")


class ToolchainMissing(Exception):
    """The language's toolchain is not installed here (the message says what is missing)."""


class BuildFailed(Exception):
    """The toolchain is there but the build failed (the message holds the compiler's output)."""


@dataclass(frozen=True)
class Language:
    key: str  # folder name and route: /lang/<key>
    title: str
    toolchain: str  # what builds it, for people
    sources: tuple[str, ...]  # inputs relative to the folder, the handler's first (all are hashed)
    outputs: tuple[str, ...]  # "handler" and maybe "plugin": <folder>/<name>.wasm
    identify: Callable[[], str] = field(repr=False)  # the toolchain's identity, or ToolchainMissing
    # compile(folder, output dir, outputs to build): writes <output dir>/<name>.wasm for each
    compile: Callable[[Path, Path, tuple[str, ...]], None] = field(repr=False)
    commands: str = ""  # the build commands in short, for people (also part of the cache key)
    kind: str = "wagi"  # "wagi": handler.wasm is a WAGI module; "wasi:http": a component

    @property
    def folder(self) -> Path:
        return HERE / self.key

    @property
    def label(self) -> str:
        """The title, with the route kind for the components (tables and charts)."""
        return self.title if self.kind == "wagi" else f"{self.title} ({self.kind})"


def _run(cmd: Sequence[str | Path], *, cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [str(c) for c in cmd],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        shown = " ".join(str(c) for c in cmd)
        raise BuildFailed(f"`{shown}` exited with {proc.returncode}:\n{proc.stderr}{proc.stdout}")
    return proc.stdout


def _version(cmd: Sequence[str], missing: str) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=60)
    except OSError:
        raise ToolchainMissing(missing) from None
    if proc.returncode != 0:
        raise ToolchainMissing(f"{missing} (`{' '.join(cmd)}` failed: {proc.stderr.strip()})")
    return proc.stdout.strip()


# --- C, C++, Zig: PyPI ziglang -------------------------------------------------------------------


def _zig_id() -> str:
    try:
        return "ziglang-" + importlib.metadata.version("ziglang")
    except importlib.metadata.PackageNotFoundError:
        raise ToolchainMissing(
            "PyPI ziglang is not installed (run `bash tools/setup.sh`)"
        ) from None


ZIG = (sys.executable, "-m", "ziglang")
C_FLAGS = ("-target", "wasm32-wasi", "-O2", "-s")


def _compile_c(folder: Path, out: Path, outputs: tuple[str, ...]) -> None:
    if "handler" in outputs:
        _run([*ZIG, "cc", *C_FLAGS, "-o", out / "handler.wasm", "handler.c"], cwd=folder)
    if "plugin" in outputs:
        reactor = (*C_FLAGS, "-mexec-model=reactor")
        _run([*ZIG, "cc", *reactor, "-o", out / "plugin.wasm", "plugin.c"], cwd=folder)


def _compile_cpp(folder: Path, out: Path, outputs: tuple[str, ...]) -> None:
    flags = (*C_FLAGS, "-fno-exceptions")
    _run([*ZIG, "c++", *flags, "-o", out / "handler.wasm", "handler.cpp"], cwd=folder)


def _compile_zig(folder: Path, out: Path, outputs: tuple[str, ...]) -> None:
    # cwd is the output directory, so zig's local cache (.zig-cache) stays out of the repository.
    _run(
        [
            *ZIG,
            "build-exe",
            "-target",
            "wasm32-wasi",
            "-O",
            "ReleaseSmall",
            f"-femit-bin={out / 'handler.wasm'}",
            folder / "handler.zig",
        ],
        cwd=out,
    )


# --- Rust: Debian's rustc and cargo 1.63 with libstd-rust-dev-wasm32 ----------------------------


def _rust_id() -> str:
    install = "run `bash tools/install-toolchains.sh` (Debian: rustc cargo libstd-rust-dev-wasm32)"
    rustc = _version([RUSTC, "--version"], f"{RUSTC} not found; {install}")
    cargo = _version([CARGO, "--version"], f"{CARGO} not found; {install}")
    sysroot = _version([RUSTC, "--print", "sysroot"], f"{RUSTC} --print sysroot failed")
    if not (Path(sysroot) / "lib" / "rustlib" / "wasm32-wasi" / "lib").is_dir():
        raise ToolchainMissing(f"{rustc} has no wasm32-wasi standard library; {install}")
    return f"{rustc}; {cargo}"


def _compile_rust(folder: Path, out: Path, outputs: tuple[str, ...]) -> None:
    target = out / "target"
    env = {
        "RUSTC": RUSTC,
        "CARGO_TARGET_DIR": str(target),
        # Debian's cargo and rustc first: rustup's (if any) cannot use Debian's wasm32-wasi std.
        "PATH": f"{Path(RUSTC).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    only = {"handler": ("--bin", "handler"), "plugin": ("--lib",)}
    which = [] if len(outputs) > 1 else list(only[outputs[0]])
    _run(
        [CARGO, "build", "--release", "--offline", "--locked", "--target", "wasm32-wasi", *which],
        cwd=folder,
        env=env,
    )
    built = target / "wasm32-wasi" / "release"
    for name in outputs:
        os.replace(built / f"{name}.wasm", out / f"{name}.wasm")
    shutil.rmtree(target)


# --- Go: Go >= 1.21 (Debian bookworm-backports golang-1.23-go) -----------------------------------


def _go_binary() -> tuple[str, str]:
    for candidate in GO_CANDIDATES:
        if not candidate or not shutil.which(candidate):
            continue
        try:
            version = _version([candidate, "version"], candidate)
        except ToolchainMissing:
            continue
        match = re.search(r"go1\.(\d+)", version)
        if match and int(match.group(1)) >= 21:  # GOOS=wasip1 arrived in Go 1.21
            return candidate, version
    raise ToolchainMissing(
        "no Go 1.21 or later (GOOS=wasip1); run `bash tools/install-toolchains.sh`"
        " (Debian bookworm-backports: golang-1.23-go)"
    )


def _go_id() -> str:
    return _go_binary()[1]


def _compile_go(folder: Path, out: Path, outputs: tuple[str, ...]) -> None:
    go, _ = _go_binary()
    env = {"GOOS": "wasip1", "GOARCH": "wasm", "GOTOOLCHAIN": "local", "GOPROXY": "off"}
    if not os.environ.get("GOCACHE") and not os.environ.get("HOME"):
        env["GOCACHE"] = str(guestbuild.cache_dir() / "go-build")  # go needs one somewhere
    _run(
        [go, "build", "-trimpath", "-ldflags=-s -w", "-o", out / "handler.wasm", "."],
        cwd=folder,
        env=env,
    )


# --- AssemblyScript: npm, pinned by package-lock.json -------------------------------------------


def _npm_dir() -> Path:
    return guestbuild.cache_dir() / "npm-assemblyscript"


def _as_id() -> str:
    for tool in ("node", "npm"):
        if not shutil.which(tool):
            raise ToolchainMissing(f"{tool} is not installed (Debian: nodejs npm)")
    node = _version(["node", "--version"], "node does not run")
    lock = (HERE / "assemblyscript" / "package-lock.json").read_bytes()
    return f"node {node}; lock {hashlib.sha256(lock).hexdigest()[:16]}"


def _npm_install() -> Path:
    """``npm ci`` the pinned compiler into the cache, once per lockfile."""
    src = HERE / "assemblyscript"
    dest = _npm_dir()
    lock = src / "package-lock.json"
    installed = dest / "package-lock.json"
    asc = dest / "node_modules" / ".bin" / "asc"
    if installed.exists() and installed.read_bytes() == lock.read_bytes() and asc.exists():
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(src / name, dest / name)
    _run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=dest)
    return dest


def _compile_as(folder: Path, out: Path, outputs: tuple[str, ...]) -> None:
    npm = _npm_install()
    asc = npm / "node_modules" / ".bin" / "asc"
    # Relative to the npm folder, the cwd: asc resolves the config's "lib" and the handler's
    # imports of the shim from there.
    shim = Path("node_modules", "@assemblyscript", "wasi-shim", "asconfig.json")
    optimise = ("-O3", "--noAssert")
    if "handler" in outputs:
        handler = (folder / "handler.ts", "--config", shim, *optimise)
        _run([asc, *handler, "-o", out / "handler.wasm"], cwd=npm)
    if "plugin" in outputs:
        # No WASI, and --use abort= drops the abort import (a failed check traps).
        plugin = (folder / "plugin.ts", "--use", "abort=", *optimise)
        _run([asc, *plugin, "-o", out / "plugin.wasm"], cwd=npm)


# --- WAT: wasmtime.wat2wasm ----------------------------------------------------------------------


def _wat_id() -> str:
    return "wasmtime-" + importlib.metadata.version("wasmtime")


def _compile_wat(folder: Path, out: Path, outputs: tuple[str, ...]) -> None:
    import wasmtime

    try:
        wasm = wasmtime.wat2wasm((folder / "handler.wat").read_text())
    except wasmtime.WasmtimeError as e:
        raise BuildFailed(f"handler.wat: {e}") from None
    (out / "handler.wasm").write_bytes(wasm)


# --- wasi:http components: examples/http's builds (C by hand, componentize-py, componentize-js) --


HTTP_EXAMPLES = REPO / "examples" / "http"
COMPONENT_TOOLS = REPO / "examples" / "components" / "tools"


def _http_build() -> Any:
    """examples/http/build.py as a module (its name, build, is this folder's command's too)."""
    spec = importlib.util.spec_from_file_location("http_build", HTTP_EXAMPLES / "build.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _files_id(*paths: Path) -> str:
    """A short sha256 of files the build runs or installs from (so an edit to them rebuilds)."""
    h = hashlib.sha256()
    for path in paths:
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _node_id(*scripts: Path) -> str:
    """node and npm are there; the identity of the npm tools (jco and componentize-js, pinned by
    examples/components/tools/package-lock.json and installed on first use by setup-npm.sh)
    and of the build scripts that use them."""
    for tool in ("node", "npm"):
        if not shutil.which(tool):
            raise ToolchainMissing(f"{tool} is not installed (Debian: nodejs npm)")
    node = _version(["node", "--version"], "node does not run")
    tools = (COMPONENT_TOOLS / "package-lock.json", COMPONENT_TOOLS / "setup-npm.sh")
    return f"node {node}; npm tools and scripts {_files_id(*tools, *scripts)}"


def _http_c_id() -> str:
    return f"{_zig_id()}; {_node_id(HTTP_EXAMPLES / 'build.py')}"


def _componentize(make: Callable[[Any, Path], None]) -> None:
    """Run ``make(http, tools)`` (``http``: examples/http/build.py) with a tool's failure made a
    ``BuildFailed``."""
    http = _http_build()
    try:
        make(http, http.tools_dir())
    except subprocess.CalledProcessError as e:
        shown = " ".join(str(c) for c in e.cmd)
        raise BuildFailed(f"`{shown}` exited with {e.returncode}:\n{e.stderr}{e.stdout}") from None


def _compile_http_c(folder: Path, out: Path, outputs: tuple[str, ...]) -> None:
    # examples/http/build.py's flags: a reactor core module (no libc call imports WASI), then
    # jco's wasm-tools with the proxy world's WIT.
    _componentize(
        lambda http, tools: http.make_component(
            folder / "handler.c", out / "handler.wasm", tools, http.proxy_wit(tools)
        )
    )


def _http_rust_id() -> str:
    rust = _rust_id()
    sysroot = _version([RUSTC, "--print", "sysroot"], f"{RUSTC} --print sysroot failed")
    if not (Path(sysroot) / "lib" / "rustlib" / "wasm32-unknown-unknown" / "lib").is_dir():
        raise ToolchainMissing(
            "no wasm32-unknown-unknown standard library; run `bash tools/install-toolchains.sh`"
            " (Debian: libstd-rust-dev-wasm32)"
        )
    return f"{rust}; {_node_id(HTTP_EXAMPLES / 'build.py')}"


def _compile_http_rust(folder: Path, out: Path, outputs: tuple[str, ...]) -> None:
    # A cdylib for wasm32-unknown-unknown (no WASI imports at all), then jco's wasm-tools.
    target = out / "target"
    _run(
        [
            CARGO,
            "build",
            "--release",
            "--offline",
            "--locked",
            "--target",
            "wasm32-unknown-unknown",
        ],
        cwd=folder,
        env={
            "RUSTC": RUSTC,
            "CARGO_TARGET_DIR": str(target),
            "PATH": f"{Path(RUSTC).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        },
    )
    core = target / "wasm32-unknown-unknown" / "release" / "handler.wasm"
    _componentize(
        lambda http, tools: http.componentize(
            core, out / "handler.wasm", tools, http.proxy_wit(tools)
        )
    )
    shutil.rmtree(target)


def _compile_http_zig(folder: Path, out: Path, outputs: tuple[str, ...]) -> None:
    # A wasm32-freestanding library (no WASI imports; -rdynamic exports what `export` marks),
    # then jco's wasm-tools. cwd: the output directory, so zig's .zig-cache stays out of the repo.
    core = out / "core.wasm"
    zig_flags = ("-target", "wasm32-freestanding", "-fno-entry", "-rdynamic", "-O", "ReleaseSmall")
    _run([*ZIG, "build-exe", *zig_flags, f"-femit-bin={core}", folder / "handler.zig"], cwd=out)
    _componentize(
        lambda http, tools: http.componentize(
            core, out / "handler.wasm", tools, http.proxy_wit(tools)
        )
    )
    core.unlink()


def _http_python_id() -> str:
    if not shutil.which("python3"):
        raise ToolchainMissing("python3 is not installed (componentize-py gets a venv of its own)")
    scripts = (HTTP_EXAMPLES / "python" / "build.sh", COMPONENT_TOOLS / "setup-componentize-py.sh")
    return _node_id(*scripts)  # node: the WASI packages' WIT comes from jco's npm package


def _compile_http_python(folder: Path, out: Path, outputs: tuple[str, ...]) -> None:
    # componentize-py (pinned by setup-componentize-py.sh, which the script runs first).
    _run(["bash", HTTP_EXAMPLES / "python" / "build.sh", out / "handler.wasm", folder], cwd=out)


def _http_js_id() -> str:
    return _node_id(HTTP_EXAMPLES / "js" / "build.sh", HTTP_EXAMPLES / "js" / "componentize.mjs")


def _compile_http_js(folder: Path, out: Path, outputs: tuple[str, ...]) -> None:
    _run(
        ["bash", HTTP_EXAMPLES / "js" / "build.sh", out / "handler.wasm", folder / "app.js"],
        cwd=out,
    )


LANGUAGES: dict[str, Language] = {
    lang.key: lang
    for lang in (
        Language(
            "c",
            "C",
            "PyPI ziglang (zig cc)",
            ("handler.c", "plugin.c"),
            ("handler", "plugin"),
            _zig_id,
            _compile_c,
            f"zig cc {' '.join(C_FLAGS)} [-mexec-model=reactor]",
        ),
        Language(
            "cpp",
            "C++",
            "PyPI ziglang (zig c++)",
            ("handler.cpp",),
            ("handler",),
            _zig_id,
            _compile_cpp,
            f"zig c++ {' '.join(C_FLAGS)} -fno-exceptions",
        ),
        Language(
            "rust",
            "Rust",
            "Debian rustc/cargo 1.63 + libstd-rust-dev-wasm32",
            ("src/main.rs", "src/lib.rs", "Cargo.toml", "Cargo.lock"),
            ("handler", "plugin"),
            _rust_id,
            _compile_rust,
            "cargo build --release --offline --locked --target wasm32-wasi",
        ),
        Language(
            "go",
            "Go",
            "Debian bookworm-backports golang-1.23-go",
            ("main.go", "go.mod"),
            ("handler",),
            _go_id,
            _compile_go,
            "GOOS=wasip1 GOARCH=wasm go build -trimpath -ldflags='-s -w'",
        ),
        Language(
            "zig",
            "Zig",
            "PyPI ziglang (zig build-exe)",
            ("handler.zig",),
            ("handler",),
            _zig_id,
            _compile_zig,
            "zig build-exe -target wasm32-wasi -O ReleaseSmall",
        ),
        Language(
            "assemblyscript",
            "AssemblyScript",
            "npm assemblyscript 0.28 + @assemblyscript/wasi-shim",
            ("handler.ts", "plugin.ts", "package.json", "package-lock.json"),
            ("handler", "plugin"),
            _as_id,
            _compile_as,
            "asc --config wasi-shim -O3 --noAssert; asc --use abort= -O3 --noAssert",
        ),
        Language(
            "wat",
            "WAT",
            "PyPI wasmtime (wat2wasm)",
            ("handler.wat",),
            ("handler",),
            _wat_id,
            _compile_wat,
            "wasmtime.wat2wasm",
        ),
        Language(
            "http-c",
            "C",
            "PyPI ziglang + npm jco (wasm-tools)",
            ("handler.c",),
            ("handler",),
            _http_c_id,
            _compile_http_c,
            "zig cc -mexec-model=reactor; jco wasm-tools component new (wasi:http/proxy@0.2.12)",
            "wasi:http",
        ),
        Language(
            "http-rust",
            "Rust",
            "Debian rustc/cargo 1.63 + npm jco (wasm-tools)",
            ("src/lib.rs", "Cargo.toml", "Cargo.lock"),
            ("handler",),
            _http_rust_id,
            _compile_http_rust,
            "cargo build --release --target wasm32-unknown-unknown; jco wasm-tools component new",
            "wasi:http",
        ),
        Language(
            "http-zig",
            "Zig",
            "PyPI ziglang + npm jco (wasm-tools)",
            ("handler.zig",),
            ("handler",),
            _http_c_id,  # the same tools as the C component's
            _compile_http_zig,
            "zig build-exe -target wasm32-freestanding -fno-entry -rdynamic; jco wasm-tools",
            "wasi:http",
        ),
        Language(
            "http-python",
            "Python",
            "PyPI componentize-py 0.25",
            ("app.py",),
            ("handler",),
            _http_python_id,
            _compile_http_python,
            "componentize-py -w wasi:http/proxy@0.2.12 componentize app",
            "wasi:http",
        ),
        Language(
            "http-js",
            "JavaScript",
            "npm componentize-js 0.22 (via jco 1.35)",
            ("app.js",),
            ("handler",),
            _http_js_id,
            _compile_http_js,
            "componentize-js (StarlingMonkey, wasi:http/incoming-handler@0.2.10)",
            "wasi:http",
        ),
    )
}


@dataclass
class Built:
    language: Language
    paths: dict[str, Path]  # output name ("handler", "plugin") -> the .wasm beside the sources
    seconds: float  # how long the compile took when it ran (from the cache's record)
    cached: bool  # True if nothing was compiled this time


def cache_key(lang: Language, toolchain: str, folder: Path | None = None) -> str:
    """sha256 of the language, its toolchain's identity, its build commands (the compile
    function's own code and the shared C flags, so a changed flag rebuilds) and every source
    byte."""
    folder = folder or lang.folder
    h = hashlib.sha256()
    commands = (lang.commands, inspect.getsource(lang.compile), repr(C_FLAGS))
    for part in (lang.key, toolchain, *commands):
        h.update(part.encode() + b"\0")
    for name in lang.sources:
        h.update(name.encode() + b"\0" + (folder / name).read_bytes() + b"\0")
    return h.hexdigest()[:32]


def build(key: str, *, use_cache: bool = True) -> Built:
    """Build one language's guests (or take them from the cache) and copy them beside the sources.

    Raises ``ToolchainMissing`` or ``BuildFailed``. ``use_cache=False`` compiles into a fresh
    directory and leaves the cache alone (the benchmark's build time).
    """
    lang = LANGUAGES[key]
    toolchain = lang.identify()
    digest = cache_key(lang, toolchain)
    entry = guestbuild.cache_dir() / "languages" / f"{key}-{digest}"
    record = entry / "build.json"
    cached = use_cache and record.exists()
    if not cached:
        entry.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=entry.parent, prefix=f".{key}-") as tmp:
            out = Path(tmp) / "out"
            out.mkdir()
            started = time.perf_counter()
            lang.compile(lang.folder, out, lang.outputs)
            seconds = time.perf_counter() - started
            for name in lang.outputs:
                if not (out / f"{name}.wasm").is_file():
                    raise BuildFailed(f"{key}: the build did not produce {name}.wasm")
            (out / "build.json").write_text(
                json.dumps({"toolchain": toolchain, "seconds": round(seconds, 3)}) + "\n"
            )
            if not use_cache:
                return _publish(lang, out, seconds, cached=False)
            # Keep only the outputs and the record: a concurrent builder may have won the race.
            for extra in out.iterdir():
                if extra.name != "build.json" and extra.suffix != ".wasm":
                    shutil.rmtree(extra) if extra.is_dir() else extra.unlink()
            try:
                os.replace(out, entry)
            except OSError:
                if not record.exists():
                    raise
    seconds = float(json.loads(record.read_text())["seconds"])
    return _publish(lang, entry, seconds, cached=cached)


def _publish(lang: Language, out: Path, seconds: float, *, cached: bool) -> Built:
    paths = {}
    for name in lang.outputs:
        src = out / f"{name}.wasm"
        dest = lang.folder / f"{name}.wasm"
        data = src.read_bytes()
        if not dest.exists() or dest.read_bytes() != data:
            tmp = dest.with_suffix(".wasm.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, dest)
        paths[name] = dest
    return Built(lang, paths, seconds, cached)


def build_all(
    keys: Iterable[str] | None = None,
) -> tuple[dict[str, Built], dict[str, str], dict[str, str]]:
    """Build the given languages (default: all). Returns (built, missing toolchains, failures),
    the last two mapping a language to the reason."""
    built: dict[str, Built] = {}
    missing: dict[str, str] = {}
    failed: dict[str, str] = {}
    # Every compile is a separate process, so threads build the languages side by side.
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {key: pool.submit(build, key) for key in keys or LANGUAGES}
    for key, future in futures.items():
        try:
            built[key] = future.result()
        except ToolchainMissing as e:
            missing[key] = str(e)
        except BuildFailed as e:
            failed[key] = str(e)
    return built, missing, failed


# --- the demo's manifest -------------------------------------------------------------------------


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string (JSON's escapes are valid TOML)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _absolute(entry: dict[str, object], base: Path) -> dict[str, object]:
    """A manifest entry whose module and volume paths no longer depend on its file's folder."""
    out = dict(entry)
    module = out.get("module")
    if isinstance(module, str) and not module.startswith("file:"):
        out["module"] = str(base / module)
    volumes = out.get("volumes")
    if isinstance(volumes, dict):
        fixed: dict[str, object] = {}
        for guest, host in volumes.items():
            if isinstance(host, str):
                fixed[guest] = str(base / host)
            elif isinstance(host, dict) and isinstance(host.get("path"), str):
                fixed[guest] = {**host, "path": str(base / host["path"])}
            else:
                fixed[guest] = host
        out["volumes"] = fixed
    return out


def language_entries(keys: Iterable[str]) -> list[dict[str, object]]:
    """The examples/languages/modules.toml entries of these languages (paths relative to HERE)."""
    manifest = tomllib.loads((HERE / "modules.toml").read_text())
    wanted = {f"/lang/{k}" for k in keys}
    return [m for m in manifest["module"] if m["route"] in wanted]


def index_page(built: Iterable[str], skipped: dict[str, str]) -> str:
    kinds = {"wagi": "WAGI module", "wasi:http": "wasi:http component"}
    rows = "".join(
        f'  <tr><td><a href="{k}?name=Ada&amp;n=42">/lang/{k}</a></td>'
        f"<td>{html.escape(LANGUAGES[k].title)}</td><td>{kinds[LANGUAGES[k].kind]}</td>"
        f"<td>{html.escape(LANGUAGES[k].toolchain)}</td></tr>\n"
        for k in built
    )
    buttons = "".join(
        f'  <button type="submit" formaction="{k}?name=Ada">{html.escape(LANGUAGES[k].label)}'
        "</button>\n"
        for k in built
    )
    missing = "".join(
        f"  <li><b>{html.escape(LANGUAGES[k].title)}</b>: {html.escape(reason)}</li>\n"
        for k, reason in skipped.items()
    )
    skipped_html = (
        f"<h2>Not built on this machine</h2>\n<ul>\n{missing}</ul>\n"
        if skipped
        else "<p>Every language was built.</p>\n"
    )
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        "<title>One handler, every language</title>\n"
        "<style>body{font-family:system-ui,sans-serif;max-width:50rem;margin:2rem auto}"
        "td,th{padding:.2rem .8rem;text-align:left}</style>\n</head>\n<body>\n"
        "<h1>One handler, in every language</h1>\n"
        "<p>Each module answers with JSON: the method, the query string, the "
        "<code>X-Greeting</code> header and the request body, as a WAGI module (CGI) or as a "
        "wasi:http component. Source: <code>examples/languages/</code>.</p>\n"
        "<table>\n  <tr><th>Try</th><th>Language</th><th>Kind</th><th>Built with</th></tr>\n"
        f"{rows}</table>\n"
        "<h2>POST a body</h2>\n"
        '<form method="post" enctype="text/plain">\n'
        '  <textarea name="text" rows="3">Hello from a form</textarea>\n'
        f"{buttons}</form>\n{skipped_html}</body>\n</html>\n"
    )


def _write_manifest(path: Path, entries: Iterable[dict[str, object]], header: str) -> Path:
    lines = [f"# {line}" for line in header.splitlines()]
    for entry in entries:
        lines += ["", "[[module]]", *(f"{k} = {_toml(v)}" for k, v in entry.items())]
    path.write_text("\n".join(lines) + "\n")
    return path


def _index_entry(directory: Path, built: list[str], skipped: dict[str, str]) -> dict[str, object]:
    """Write DIR/lang-index/index.html; the entry serving it at /lang/ (with the WAGI examples'
    static.wasm, which must be built)."""
    lang_index = directory / "lang-index"
    lang_index.mkdir(parents=True, exist_ok=True)
    (lang_index / "index.html").write_text(index_page(built, skipped))
    return {
        "route": "/lang/...",
        "module": str(REPO / "examples" / "wagi" / "static.wasm"),
        "volumes": {"/static": {"path": str(lang_index), "read_only": True}},
    }


def write_manifest(
    path: Path, keys: Iterable[str], skipped: dict[str, str] | None = None, *, index: bool = True
) -> Path:
    """A modules.toml at ``path`` serving only these languages' handlers (absolute paths) and,
    with ``index``, their index page at /lang/ naming what was ``skipped``."""
    keys = list(keys)
    path = path.resolve()
    entries = [_absolute(e, HERE) for e in language_entries(keys)]
    if index:
        entries.append(_index_entry(path.parent, keys, skipped or {}))
    return _write_manifest(path, entries, "Some of examples/languages/modules.toml.")


DEMO_ROW = (
    '  <tr><td><a href="lang/">/lang/</a></td><td>examples/languages/</td>'
    "<td>the same JSON handler in C, C++, Rust, Go, Zig, AssemblyScript and WAT (WAGI), and in C,"
    " Rust, Zig, Python and JavaScript (wasi:http components)</td></tr>\n"
)


def write_demo(directory: Path, built: Iterable[str], skipped: dict[str, str]) -> Path:
    """Write DIR/modules.toml: the built languages' handlers, their index page at /lang/, then
    every route of examples/wagi/modules.toml, whose static files are served from a copy of
    examples/wagi/public with a row linking to /lang/ added to its index page."""
    built = list(built)
    directory = directory.resolve()  # the manifest's paths must not depend on the server's cwd
    directory.mkdir(parents=True, exist_ok=True)
    wagi_dir = REPO / "examples" / "wagi"
    public = directory / "public"
    shutil.rmtree(public, ignore_errors=True)
    shutil.copytree(wagi_dir / "public", public)
    page = (public / "index.html").read_text()
    if "</table>" in page:
        page = page.replace("</table>", DEMO_ROW + "</table>", 1)
    else:
        page = page.replace("</body>", f"<table>\n{DEMO_ROW}</table>\n</body>", 1)
    (public / "index.html").write_text(page)

    entries = [_absolute(e, HERE) for e in language_entries(built)]
    entries.append(_index_entry(directory, built, skipped))
    wagi = tomllib.loads((wagi_dir / "modules.toml").read_text())
    for entry in wagi["module"]:
        entry = _absolute(entry, wagi_dir)
        volumes = entry.get("volumes")
        if isinstance(volumes, dict):
            entry["volumes"] = {
                guest: str(public) if host == str(wagi_dir / "public") else host
                for guest, host in volumes.items()
            }
        entries.append(entry)
    header = (
        "Written by examples/languages/build.py --demo: the language handlers that were built,\n"
        "their index page, then examples/wagi/modules.toml. Do not edit; it is rewritten."
    )
    return _write_manifest(directory / "modules.toml", entries, header)


def strict_default() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="build.py", description="Build the guests in examples/languages/, cached."
    )
    parser.add_argument("languages", nargs="*", metavar="LANGUAGE", help=", ".join(LANGUAGES))
    parser.add_argument(
        "--strict",
        action="store_true",
        default=strict_default(),
        help="fail if a toolchain is missing (the default when CI=true)",
    )
    parser.add_argument("--demo", type=Path, metavar="DIR", help="write DIR/modules.toml")
    args = parser.parse_args(argv)
    unknown = [k for k in args.languages if k not in LANGUAGES]
    if unknown:
        parser.error(f"unknown language {unknown[0]!r} (choose from {', '.join(LANGUAGES)})")
    built, missing, failed = build_all(args.languages or None)
    for key, result in built.items():
        how = "cached" if result.cached else f"built in {result.seconds:.1f} s"
        names = ", ".join(str(p.relative_to(REPO)) for p in result.paths.values())
        print(f"{LANGUAGES[key].title}: {names} ({how})")
    for key, reason in missing.items():
        print(f"{LANGUAGES[key].title}: skipped, toolchain missing: {reason}", file=sys.stderr)
    for key, reason in failed.items():
        print(f"{LANGUAGES[key].title}: build failed: {reason}", file=sys.stderr)
    if args.demo:
        print(write_demo(args.demo, built, {**missing, **failed}))
    if failed or (missing and args.strict):
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
