"""The language gallery, measured: the same handler in every language of examples/languages/, as
WAGI modules and as wasi:http components.

Per language and kind, in one run:

- ``source lines``: non-blank lines of the handler's source file (comments included);
- ``module``: size of the built ``handler.wasm`` (a core module, or a component);
- ``build``: wall time to rebuild the handler after an edit (a copy of its folder with one comment
  line added at the top, so no compiler output cache can answer), with the toolchains' library
  caches warm as they are after a first build (zig's wasi-libc and libc++, Go's standard
  library in a build cache private to the run, warmed by an unmeasured first round); median of
  ``--build-rounds``;
- ``cold compile``: ``wasmgate.load`` of the module with the artifact cache off (Cranelift
  compiling it to native code, as ``wasmgate serve`` does once per module at start-up without a
  cache); median of ``--compile-rounds``;
- ``per request``: in-process cost of one request through wasmgate's per-request path
  (the route's ``handle``, as ``bench_request.py`` and ``bench_wasihttp.py`` measure it): for a
  WAGI module the CGI environment, a fresh instance, the 64-byte POST body on stdin, captured
  output, parsed response; for a component a fresh instance, the request's resources, the body
  through wasi:io streams, the response it builds. Interleaved rounds (each at least
  ``--min-time`` seconds per language), median.

Writes the table as Markdown (stdout, and ``--table FILE``) and a PNG bar chart of the
per-request cost (``--chart``, default ``examples/languages/per-request.png``; needs PyPI
``matplotlib``, which is not a project dependency: ``pip install matplotlib``, or ``--no-chart``).

    .venv/bin/python benchmarks/bench_languages.py [--json] [--no-chart]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import wasmgate
from wasmgate import CacheConfig
from wasmgate.config import GatewayConfig
from wasmgate.engine.capture import default_pump
from wasmgate.gateway.state import load_state
from wasmgate.wagi.cgi import CgiRequest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples" / "languages"))

import gallery  # examples/languages/gallery.py

REPO = gallery.REPO
CHART = REPO / "examples" / "languages" / "per-request.png"
HEADERS = (
    (b"host", b"localhost:3000"),
    (b"user-agent", b"bench/1.0"),
    (b"accept", b"*/*"),
    (b"content-type", b"text/plain"),
    (b"x-greeting", b"hello"),
)
BODY = b'The quick brown fox jumps over the lazy dog; "quoted" and a tab\tend.\n'[:64]
COMMENT = {".wat": ";;", ".py": "#"}  # every other handler source takes //


def source_lines(lang: gallery.Language) -> int:
    text = (lang.folder / lang.sources[0]).read_text()
    return sum(1 for line in text.splitlines() if line.strip())


def rebuild_seconds(lang: gallery.Language, tmp: Path, nonce: int) -> float:
    """Build the handler from an edited copy of the folder; return the compile's wall time."""
    folder = tmp / f"{lang.key}-src-{nonce}"
    shutil.copytree(lang.folder, folder, ignore=shutil.ignore_patterns("*.wasm"))
    source = folder / lang.sources[0]
    mark = COMMENT.get(source.suffix, "//")
    # nonce + 1 lines at the top, so that each round's line numbers, and with them the object code
    # (line tables), differ from every other round's: Go caches links by the objects' content, so
    # an edit that leaves the object unchanged (a comment at the end) would relink from its cache.
    edit = "".join(f"{mark} benchmark edit {nonce} {time.time_ns()}\n" for _ in range(nonce + 1))
    source.write_text(edit + source.read_text())
    out = tmp / f"{lang.key}-out-{nonce}"
    out.mkdir()
    started = time.perf_counter()
    lang.compile(folder, out, ("handler",))
    seconds = time.perf_counter() - started
    assert (out / "handler.wasm").stat().st_size > 0
    shutil.rmtree(folder)
    shutil.rmtree(out)
    return seconds


def compile_seconds(wasm: Path) -> float:
    started = time.perf_counter()
    wasmgate.load(wasm, cache=CacheConfig(enabled=False))
    return time.perf_counter() - started


def request_case(state: Any, key: str) -> Callable[[], None]:
    path = f"/lang/{key}"
    request = CgiRequest(
        method="POST",
        raw_path=path,
        query_string="name=Ada&n=42",
        headers=(*HEADERS, (b"content-length", str(len(BODY)).encode())),
        client=("127.0.0.1", 40000),
    )
    match = state.table.match(path)
    handler = match.route.handler

    def run() -> None:
        result = handler.handle(request, BODY, match)
        assert result.status == 200, result.reason

    return run


def per_request_us(fn: Callable[[], None], min_time: float) -> float:
    n = 0
    started = time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - started
        if elapsed >= min_time and n >= 20:
            return elapsed / n * 1e6


def human_size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / 1024 / 1024:.1f} MB"
    if n >= 1024:
        return f"{n / 1024:.0f} KB"
    return f"{n} B"


def print_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| language | toolchain | source lines | module | build | cold compile | per request |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['language']} | {r['toolchain']} | {r['source_lines']} "
            f"| {human_size(r['module_bytes'])} | {r['build_s']:.2f} s "
            f"| {r['compile_ms']:.0f} ms | {r['request_us']:.0f} µs |"
        )
    return "\n".join(lines)


def write_chart(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    colours = {"wagi": "#4c72b0", "wasi:http": "#dd8452"}
    ordered = sorted(rows, key=lambda r: r["request_us"], reverse=True)
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.28 * len(ordered)), dpi=120)
    values = [r["request_us"] for r in ordered]
    bars = ax.barh(
        [r["language"] for r in ordered], values, color=[colours[r["kind"]] for r in ordered]
    )
    ax.bar_label(bars, labels=[f"{v:.0f} µs" for v in values], padding=3, fontsize=8)
    ax.set_xlabel("in-process cost of one request through wasmgate (µs, lower is better)")
    ax.set_xlim(0, max(values) * 1.18)
    ax.set_title("The same handler in every language", fontsize=10)
    ax.legend(
        handles=[
            Patch(color=colours["wagi"], label="WAGI module"),
            Patch(color=colours["wasi:http"], label="wasi:http component"),
        ],
        loc="upper right",
        fontsize=8,
        frameon=False,
    )
    ax.tick_params(axis="y", labelsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-rounds", type=int, default=3)
    parser.add_argument("--compile-rounds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5, help="per-request rounds")
    parser.add_argument("--min-time", type=float, default=0.3, help="seconds per request round")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--table", type=Path, help="also write the Markdown table here")
    parser.add_argument("--chart", type=Path, default=CHART)
    parser.add_argument("--no-chart", action="store_true")
    args = parser.parse_args()
    if not args.no_chart:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            sys.exit("bench_languages: the chart needs matplotlib (pip install matplotlib)")

    built, missing, failed = gallery.build_all()
    if failed:
        sys.exit("bench_languages: " + "; ".join(f"{k}: {v}" for k, v in failed.items()))
    for key, reason in missing.items():
        print(f"bench_languages: {key} skipped: {reason}", file=sys.stderr)
    keys = [k for k in gallery.LANGUAGES if k in built]

    tmp = Path(tempfile.mkdtemp(prefix="wasmgate-bench-languages-"))
    try:
        # Go's build cache is private to this run (fresh, so no earlier run's links can answer),
        # and warmed with its standard library by an unmeasured first round, as for every language.
        os.environ["GOCACHE"] = str(tmp / "gocache")
        for key in keys:
            rebuild_seconds(gallery.LANGUAGES[key], tmp, 0)
        build_s: dict[str, list[float]] = {k: [] for k in keys}
        for n in range(1, args.build_rounds + 1):
            for key in keys:
                build_s[key].append(rebuild_seconds(gallery.LANGUAGES[key], tmp, n))
        compile_s: dict[str, list[float]] = {k: [] for k in keys}
        for _ in range(args.compile_rounds):
            for key in keys:
                compile_s[key].append(compile_seconds(built[key].paths["handler"]))

        toml = gallery.write_manifest(tmp / "modules.toml", keys, index=False)
        state = load_state(GatewayConfig(modules_toml=toml), default_pump())
        cases = {k: request_case(state, k) for k in keys}
        for fn in cases.values():  # warm up
            per_request_us(fn, 0.05)
        request_us: dict[str, list[float]] = {k: [] for k in keys}
        for r in range(args.rounds):
            order = keys[r % len(keys) :] + keys[: r % len(keys)]
            for key in order:
                request_us[key].append(per_request_us(cases[key], args.min_time))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    rows = [
        {
            "language": gallery.LANGUAGES[k].label,
            "kind": gallery.LANGUAGES[k].kind,
            "toolchain": gallery.LANGUAGES[k].toolchain,
            "source_lines": source_lines(gallery.LANGUAGES[k]),
            "module_bytes": built[k].paths["handler"].stat().st_size,
            "build_s": statistics.median(build_s[k]),
            "compile_ms": statistics.median(compile_s[k]) * 1e3,
            "request_us": statistics.median(request_us[k]),
        }
        for k in keys
    ]
    table = print_table(rows)
    if args.table:
        args.table.write_text(table + "\n")
    if not args.no_chart:
        write_chart(rows, args.chart)
    if args.json:
        print(json.dumps({"languages": rows, "skipped": missing}, indent=2))
    else:
        print(table)
        if not args.no_chart:
            print(f"\nchart: {args.chart}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
