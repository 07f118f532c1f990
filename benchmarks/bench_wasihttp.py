"""In-process cost of one wasi:http request against one WAGI request, side by side in one run.

Measures (interleaved rounds, medians), each through the gateway's per-request handler exactly as
``wasmgate serve`` calls it (``handler.handle(request, body, match)``: everything but HTTP and the
hop to a worker thread), both routes loaded by ``gateway.state.load_state`` from one modules.toml:
- ``wasi:http hello``: ``examples/perf/hello-http.wasm`` (the C component ``wasmtime serve`` is
  benchmarked with): a fresh store and instance, the proxy world's host calls, the response;
- ``WAGI hello``: ``examples/wagi/hello.c``: CGI environment, argv, stdin, captured stdout, parsing;
- ``wasi:http echo 64 KiB``: ``examples/http/echo-http.wasm`` with a 64 KiB body both ways;
- ``wasi:http hello (Python crossing)``, ``wasi:http echo 64 KiB (Python crossing)``: the same
  with host calls crossing through ctypes and the raw codecs instead of the C extension
  (``engine.crossing``), to show what crossing in C saves;
- ``wasi:http hello (public API)``: the same component with the binding's generic value
  conversion instead of the raw codecs, to show what the raw codecs save;
- ``componentize-py echo``: ``examples/http/python/echo-py.wasm`` (CPython in the component; built
  by ``examples/http/python/build.sh``, included when present) with a 1 KiB body.
Goal (issue 11): wasi:http hello at most 1.2x the WAGI hello. The process's malloc is set as in
``wasmgate serve`` (``gateway.protocol.limit_heap_retention``): it decides what large bodies cost.

    .venv/bin/python benchmarks/bench_wasihttp.py [--rounds 5] [--n 300] [--json]
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools"))

from _common import in_process_args, per_call  # noqa: E402
from guestbuild import build  # noqa: E402

from wasmgate.config import GatewayConfig  # noqa: E402
from wasmgate.engine import crossing  # noqa: E402
from wasmgate.engine.capture import default_pump  # noqa: E402
from wasmgate.gateway.protocol import limit_heap_retention  # noqa: E402
from wasmgate.gateway.state import load_state  # noqa: E402
from wasmgate.wagi.cgi import CgiRequest  # noqa: E402
from wasmgate.wasihttp import HttpRequest, ProxyHandler  # noqa: E402

GOAL_RATIO = 1.2
HEADERS = (
    (b"host", b"localhost:3000"),
    (b"user-agent", b"bench/1.0"),
    (b"accept", b"*/*"),
    *((f"x-header-{i}".encode(), b"some value") for i in range(10)),
)


def route_case(state: object, path: str, body: bytes) -> Callable[[], None]:
    table = state.table  # type: ignore[attr-defined]
    request = CgiRequest(
        method="POST" if body else "GET",
        raw_path=path,
        query_string="a=1&b=2",
        headers=HEADERS,
        client=("127.0.0.1", 40000),
    )
    match = table.match(path)
    handler = match.route.handler

    def run() -> None:
        result = handler.handle(request, body, match)
        assert result.status == 200, result.reason
        assert result.response is not None
        if body:
            assert len(result.response.body) == len(body)

    return run


def proxy_case(state: object, path: str, how: str, body: bytes = b"") -> Callable[[], None]:
    """The route's component on a ProxyHandler of its own whose host calls cross ``how``:
    ``python`` (ctypes and the raw codecs) or ``public`` (the binding's generic conversion)."""
    handler = state.table.match(path).route.handler  # type: ignore[attr-defined]
    if how == "python":
        with crossing.disabled():
            proxy = ProxyHandler(handler.guest, handler.limits)
    else:
        proxy = ProxyHandler(handler.guest, handler.limits, fast=False)
    assert proxy.linked.crossing == how
    method = "POST" if body else "GET"
    request = HttpRequest(method, path + "?a=1&b=2", headers=HEADERS, body=body)

    def run() -> None:
        result = proxy.serve(request)
        assert result.status == 200, result.reason
        assert result.response is not None
        assert len(result.response.body) == len(body) or not body

    return run


def main() -> int:
    args = in_process_args(__doc__ or "")
    limit_heap_retention()  # malloc as in every serving process (it decides what bodies cost)

    tmp = Path(tempfile.mkdtemp(prefix="wasmgate-bench-"))
    try:
        shutil.copy(build(REPO / "examples" / "wagi" / "hello.c"), tmp / "hello.wasm")
        shutil.copy(REPO / "examples" / "perf" / "hello-http.wasm", tmp / "hello-http.wasm")
        shutil.copy(REPO / "examples" / "http" / "echo-http.wasm", tmp / "echo-http.wasm")
        toml = (
            '[[module]]\nroute = "/hello"\nmodule = "hello.wasm"\n\n'
            '[[module]]\nroute = "/hello-http"\nmodule = "hello-http.wasm"\n\n'
            '[[module]]\nroute = "/echo-http"\nmodule = "echo-http.wasm"\n'
        )
        python = REPO / "examples" / "http" / "python" / "echo-py.wasm"
        if python.exists():
            shutil.copy(python, tmp / "echo-py.wasm")
            toml += '\n[[module]]\nroute = "/echo-py"\nmodule = "echo-py.wasm"\n'
        (tmp / "modules.toml").write_text(toml)
        state = load_state(GatewayConfig(modules_toml=tmp / "modules.toml"), default_pump())
        body = os.urandom(64 * 1024)
        cases = {
            "wasi:http hello": route_case(state, "/hello-http", b""),
            "WAGI hello": route_case(state, "/hello", b""),
            "wasi:http echo 64 KiB": route_case(state, "/echo-http", body),
            "wasi:http hello (Python crossing)": proxy_case(state, "/hello-http", "python"),
            "wasi:http echo 64 KiB (Python crossing)": proxy_case(
                state, "/echo-http", "python", body
            ),
            "wasi:http hello (public API)": proxy_case(state, "/hello-http", "public"),
        }
        if python.exists():
            cases["componentize-py echo"] = route_case(state, "/echo-py", body[:1024])
        samples: dict[str, list[float]] = {k: [] for k in cases}
        for fn in cases.values():  # warm up
            per_call(fn, 50)
        for _ in range(args.rounds):
            for name, fn in cases.items():
                slow = "public" in name or "componentize" in name
                n = max(20, args.n // 5) if slow else args.n
                samples[name].append(per_call(fn, n))
        report = {name: statistics.median(s) for name, s in samples.items()}
        ratio = report["wasi:http hello"] / report["WAGI hello"]
        goal = {"max_ratio": GOAL_RATIO, "ratio": ratio, "met": ratio <= GOAL_RATIO}
        if args.json:
            print(json.dumps({"us_per_request": report, "goal": goal}, indent=2))
        else:
            print("| case | per request (in process) |")
            print("| --- | --- |")
            for name, us in report.items():
                print(f"| {name} | {us:.0f} µs |")
            verdict = "met" if goal["met"] else "NOT met"
            print(
                f"\ngoal: wasi:http hello at most {GOAL_RATIO}x the WAGI hello: "
                f"{ratio:.2f}x, {verdict}"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
