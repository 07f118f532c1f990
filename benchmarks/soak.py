"""Soak test for ``wasmgate serve``: good and hostile traffic at once, for a bounded time.

Starts a real server on loopback (``--workers 1`` by default, so one process holds everything and
its memory is easy to read) with a modules.toml of well-behaved routes and hostile ones (guests
that spin, trap, exhaust memory, flood their output, sleep in a host call, write invalid CGI
output), then runs an asyncio raw-socket load generator against both, plus abusive clients (idle
connections, trickled headers, garbage request lines, slow readers that ask for a 4 MiB answer
and never read it, slow uploaders that declare an 8 MiB body and send 600 bytes a second, just
above the minimum rate), for ``--duration`` seconds.

Reports requests served, responses by status for each route class, p50/p99 latency, the server's
resident memory (baseline after warm-up, peak while loaded, and after the load stopped), and
whether the good routes saw zero errors (any non-200 answer or connection failure on a good route
is an error). With ``--compare-quiet`` a quiet soak (good clients only, same duration) runs first,
and the report adds the good routes' p99 against the quiet one (the bar: within 2x) and whether
the server's RSS came back within 10% of its baseline. Exit status 0 when the good routes saw no
error (and, with ``--compare-quiet``, both bars were met), 1 otherwise.

Usage::

    .venv/bin/python benchmarks/soak.py [--duration 30] [--good 8] [--hostile 8] [--abusive 4]
                                        [--slow-readers 4] [--slow-uploaders 8]
                                        [--workers 1] [--threads 2] [--hostile-cap N]
                                        [--compare-quiet] [--access-log] [--workdir DIR] [--json]

Everything stays on 127.0.0.1; every loop is bounded by the duration.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import build_guest, emit_report, free_port

REPO = Path(__file__).resolve().parent.parent
HOG = REPO / "tests" / "hostile" / "guests" / "hog.c"

# route -> (argv query for hog, extra modules.toml lines). Good routes must always answer 200.
GOOD = {
    "/good": ("ok", ""),
    "/good-nap": ("sleep&0", ""),  # a guest that makes a (zero-length) poll_oneoff host call
}
# One hostile route (a tenant's module), driven through every misbehaviour hog knows: the query
# string picks the behaviour (WAGI passes it as argv).
HOSTILE_ROUTE = "/h"
HOSTILE_LIMITS = 'timeout = "300ms"\nmax_memory = "32MiB"\nmax_response_body = "256KiB"\n'
HOSTILE_MODES = [
    "loop",
    "recurse",
    "trap",
    "divzero",
    "oob",
    "grow",
    "alloc&1000",
    "spew-out",
    "spew-err",
    "bigwrite&4",
    "clock",
    "sleep",
]
# Invalid CGI output, written by a tiny WAT guest.
BAD_OUTPUT = {
    "/h/split": b"Content-Type: text/plain\nX-Evil: a\rSet-Cookie: pwned=1\n\nx",
    "/h/badstatus": b"Status: 99999\nContent-Type: text/plain\n\nx",
    "/h/noblank": b"Content-Type: text/plain\n",
}
HOSTILE_STATUSES = {500, 502, 503, 504}
BIG_ROUTE = "/big"  # a well-behaved route with large answers, for the slow readers
SEND_TIMEOUT = 5.0  # the soak server's --send-timeout: slow readers are cut within the run


def _wat_printer(output: bytes) -> str:
    data = "".join(f"\\{b:02x}" for b in output)
    return f"""(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "{data}")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const {len(output)}))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
"""


def build_site(root: Path, hostile_cap: int) -> Path:
    hog = build_guest(HOG)
    (root / "hog.wasm").write_bytes(hog.read_bytes())
    entries = []
    for route, (_, extra) in GOOD.items():
        entries.append(f'route = "{route}"\nmodule = "hog.wasm"\n{extra}')
    entries.append(f'route = "{BIG_ROUTE}"\nmodule = "hog.wasm"\n')
    cap = f"max_concurrency = {hostile_cap}\n" if hostile_cap else ""
    entries.append(f'route = "{HOSTILE_ROUTE}"\nmodule = "hog.wasm"\n{HOSTILE_LIMITS}{cap}')
    for route, output in BAD_OUTPUT.items():
        name = route.rsplit("/", 1)[1]
        (root / f"{name}.wat").write_text(_wat_printer(output))
        entries.append(f'route = "{route}"\nmodule = "{name}.wat"\n')
    toml = root / "modules.toml"
    toml.write_text("".join(f"[[module]]\n{e}\n" for e in entries))
    return toml


def tree_rss_kib(pid: int) -> int:
    """VmRSS of ``pid`` and all its descendants, in KiB (0 for a process that is gone)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


@dataclass
class Stats:
    statuses: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies)

        def pct(p: float) -> float | None:
            if not lat:
                return None
            return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 2)

        return {
            "requests": len(lat),
            "statuses": dict(sorted(self.statuses.items())),
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
            "max_ms": round(lat[-1] * 1000, 2) if lat else None,
            "mean_ms": round(statistics.fmean(lat) * 1000, 2) if lat else None,
            "errors": self.errors[:10],
            "error_count": len(self.errors),
        }


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response; return (status, connection closes)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length, close = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection" and "close" in value.lower():
            close = True
    if length:
        await reader.readexactly(length)
    return status, close


def _targets(good: bool) -> list[str]:
    if good:
        return [f"{route}?{query}" for route, (query, _) in GOOD.items()]
    return [*(f"{HOSTILE_ROUTE}?{mode}" for mode in HOSTILE_MODES), *BAD_OUTPUT]


async def client(port: int, stats: Stats, stop: float, good: bool) -> None:
    rng = random.Random()
    targets = _targets(good)
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    while time.monotonic() < stop:
        target = rng.choice(targets)
        route = target.split("?", 1)[0]
        started = time.monotonic()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert reader is not None
            writer.write(f"GET {target} HTTP/1.1\r\nHost: soak\r\n\r\n".encode())
            status, close = await asyncio.wait_for(_read_response(reader), 30)
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as e:
            stats.errors.append(f"{route}: {type(e).__name__}: {e}")
            stats.statuses["conn-error"] += 1
            if writer is not None:
                writer.close()
            reader = writer = None
            await asyncio.sleep(0.05)
            continue
        stats.latencies.append(time.monotonic() - started)
        stats.statuses[str(status)] += 1
        if good and status != 200:
            stats.errors.append(f"{route}: status {status}")
        if close:
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


async def abusive(port: int, stop: float, counts: Counter[str]) -> None:
    """Idle connections, trickled headers and garbage, in turn, until ``stop``."""
    kinds = ["idle", "trickle", "garbage", "huge-header"]
    i = 0
    while time.monotonic() < stop:
        kind = kinds[i % len(kinds)]
        i += 1
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            counts[f"{kind}:connect-failed"] += 1
            await asyncio.sleep(0.1)
            continue
        try:
            if kind == "garbage":
                writer.write(b"\x16\x03\x01 not http at all\r\n\r\n")
            elif kind == "huge-header":
                writer.write(b"GET /good HTTP/1.1\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n")
            elif kind == "trickle":  # one header line every 250 ms, until the server gives up
                writer.write(b"GET /good HTTP/1.1\r\n")
                while time.monotonic() < stop:
                    with contextlib.suppress(TimeoutError):
                        data = await asyncio.wait_for(reader.read(200), 0.25)
                        counts[f"{kind}:{data[:12].decode('latin-1') or 'closed'}"] += 1
                        break
                    writer.write(b"X-A: b\r\n")
                continue
            with contextlib.suppress(TimeoutError):
                data = await asyncio.wait_for(reader.read(200), max(0.1, stop - time.monotonic()))
                counts[f"{kind}:{data[:12].decode('latin-1') or 'closed'}"] += 1
        except OSError:
            counts[f"{kind}:reset"] += 1
        finally:
            writer.close()


async def _held_connection(port: int, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket()
    if rcvbuf:  # a tiny window: the answer stays in the server, not in the kernel
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    except OSError:
        sock.close()
        raise
    return sock


async def _outcome(sock: socket.socket) -> str:
    """How a held connection ended: cut by the server (end of stream or reset once what the
    kernel had buffered is read), or still open when we let go."""
    loop = asyncio.get_running_loop()
    for _ in range(64):  # at most 4 MiB read: bounded
        try:
            data = await asyncio.wait_for(loop.sock_recv(sock, 65536), 0.05)
        except TimeoutError:
            return "held"
        except OSError:
            return "cut"
        if not data:
            return "cut"
    return "held"


async def slow_reader(port: int, stop: float, counts: Counter[str]) -> None:
    """Asks for a 4 MiB answer, never reads it; a fresh connection every few seconds."""
    while time.monotonic() < stop:
        try:
            sock = await _held_connection(port, rcvbuf=4096)
        except OSError:
            counts["slow-reader:connect-failed"] += 1
            await asyncio.sleep(0.1)
            continue
        try:
            sock.send(f"GET {BIG_ROUTE}?bigwrite&4 HTTP/1.1\r\nHost: soak\r\n\r\n".encode())
            await asyncio.sleep(max(0.0, min(SEND_TIMEOUT + 3, stop - time.monotonic())))
            counts[f"slow-reader:{await _outcome(sock)}"] += 1
        except OSError:
            counts["slow-reader:cut"] += 1
        finally:
            sock.close()


async def slow_uploader(port: int, stop: float, counts: Counter[str]) -> None:
    """Declares an 8 MiB body and sends 600 bytes a second (above the 500 B/s minimum), for up
    to 10 s per connection."""
    loop = asyncio.get_running_loop()
    while time.monotonic() < stop:
        try:
            sock = await _held_connection(port)
        except OSError:
            counts["slow-upload:connect-failed"] += 1
            await asyncio.sleep(0.1)
            continue
        head = b"POST /good?ok HTTP/1.1\r\nHost: soak\r\nContent-Length: 8388608\r\n\r\n"
        until = min(stop, time.monotonic() + 10)
        try:
            await loop.sock_sendall(sock, head)
            while time.monotonic() < until:
                await loop.sock_sendall(sock, b"u" * 300)
                await asyncio.sleep(0.5)
            counts[f"slow-upload:{await _outcome(sock)}"] += 1
        except OSError:
            counts["slow-upload:cut"] += 1
        finally:
            sock.close()


async def run_load(
    port: int,
    duration: float,
    n_good: int,
    n_hostile: int,
    n_abusive: int,
    n_readers: int = 0,
    n_uploaders: int = 0,
) -> tuple[Stats, Stats, Counter[str]]:
    good, hostile, abuse = Stats(), Stats(), Counter[str]()
    stop = time.monotonic() + duration
    tasks = [client(port, good, stop, True) for _ in range(n_good)]
    tasks += [client(port, hostile, stop, False) for _ in range(n_hostile)]
    tasks += [abusive(port, stop, abuse) for _ in range(n_abusive)]
    tasks += [slow_reader(port, stop, abuse) for _ in range(n_readers)]
    tasks += [slow_uploader(port, stop, abuse) for _ in range(n_uploaders)]
    await asyncio.gather(*tasks)
    return good, hostile, abuse


def _get(port: int, target: str) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1])


def soak(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="wasmgate-soak-") as tmp:
        root = args.workdir or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        toml = build_site(root, args.hostile_cap)
        port = free_port()
        env = {
            **os.environ,
            "WASMGATE_CACHE_DIR": str(root / "cache"),
        }
        log = (root / "server.log").open("wb")
        cmd = [sys.executable, "-m", "wasmgate", "serve", "-c", str(toml)]
        cmd += ["-l", f"127.0.0.1:{port}", "--workers", str(args.workers)]
        cmd += ["--threads", str(args.threads), "--header-timeout", "2s"]
        cmd += ["--send-timeout", f"{SEND_TIMEOUT:g}s"]
        if not args.access_log:
            cmd.append("--no-access-log")
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + 60
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"soak: server exited:\n{(root / 'server.log').read_text()}")
                try:
                    if _get(port, "/healthz") == 200:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("soak: server did not start")
                time.sleep(0.05)
            for target in [*_targets(True), *_targets(False)]:  # warm every route once
                _get(port, target)
            time.sleep(0.5)
            baseline = tree_rss_kib(proc.pid)
            peak = baseline
            done = False

            async def sample() -> None:
                nonlocal peak
                while not done:
                    peak = max(peak, tree_rss_kib(proc.pid))
                    await asyncio.sleep(0.1)

            async def main() -> tuple[Stats, Stats, Counter[str]]:
                nonlocal done
                sampler = asyncio.create_task(sample())
                try:
                    return await run_load(
                        port,
                        args.duration,
                        args.good,
                        args.hostile,
                        args.abusive,
                        args.slow_readers,
                        args.slow_uploaders,
                    )
                finally:
                    done = True
                    await sampler

            started = time.monotonic()
            good, hostile, abuse = asyncio.run(main())
            elapsed = time.monotonic() - started
            time.sleep(2.0)  # let the last guests finish and their memory go back
            after = tree_rss_kib(proc.pid)
            still_serving = _get(port, "/good?ok") == 200
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                exit_status: int | None = proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                exit_status = None
            log.close()
        served = len(good.latencies) + len(hostile.latencies)
        return {
            "duration_s": round(elapsed, 2),
            "clients": {
                "good": args.good,
                "hostile": args.hostile,
                "abusive": args.abusive,
                "slow_readers": args.slow_readers,
                "slow_uploaders": args.slow_uploaders,
            },
            "server": {
                "workers": args.workers,
                "threads": args.threads,
                "hostile_cap": args.hostile_cap,
            },
            "requests_served": served,
            "requests_per_s": round(served / elapsed, 1),
            "good": good.summary(),
            "hostile": hostile.summary(),
            "abusive": dict(sorted(abuse.items())),
            "rss_kib": {"baseline": baseline, "peak": peak, "after": after},
            "good_errors": len(good.errors),
            "hostile_unexpected": sorted(
                s for s in hostile.statuses if s.isdigit() and int(s) not in HOSTILE_STATUSES
            ),
            "still_serving": still_serving,
            "server_exit_status": exit_status,
        }


def print_report(r: dict[str, Any]) -> None:
    print(
        f"soak: {r['duration_s']}s, {r['requests_served']} requests ({r['requests_per_s']}/s); "
        f"clients {r['clients']}; server {r['server']}"
    )
    for kind in ("good", "hostile"):
        s = r[kind]
        print(
            f"  {kind:8} {s['requests']:>7} requests  p50 {s['p50_ms']} ms  p99 {s['p99_ms']} ms  "
            f"max {s['max_ms']} ms  statuses {s['statuses']}"
        )
    print(f"  abusive  {r['abusive']}")
    rss = r["rss_kib"]
    print(
        f"  server RSS: baseline {rss['baseline'] / 1024:.1f} MiB, peak {rss['peak'] / 1024:.1f} "
        f"MiB, after {rss['after'] / 1024:.1f} MiB"
    )
    verdict = "OK" if r["good_errors"] == 0 else "FAILED"
    print(
        f"  good-route errors: {r['good_errors']} ({verdict}); still serving: "
        f"{r['still_serving']}; server exit status: {r['server_exit_status']}"
    )
    for e in r["good"]["errors"]:
        print(f"    {e}")
    if "quiet" in r:
        q = r["quiet"]
        print(
            f"  quiet soak: good p99 {q['p99_ms']} ms; loaded/quiet p99 {r['p99_ratio']}x "
            f"(bar 2x); RSS after/baseline {r['rss_ratio']} (bar 1.10)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load")
    parser.add_argument("--good", type=int, default=8, help="clients on good routes")
    parser.add_argument("--hostile", type=int, default=8, help="clients on hostile routes")
    parser.add_argument("--abusive", type=int, default=4, help="idle/trickle/garbage clients")
    parser.add_argument("--slow-readers", type=int, default=4, help="clients never reading")
    parser.add_argument(
        "--slow-uploaders", type=int, default=8, help="clients uploading at 600 B/s"
    )
    parser.add_argument(
        "--compare-quiet",
        action="store_true",
        help="run a quiet soak first and check p99 (2x) and RSS (10%%) against it",
    )
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument("--threads", type=int, default=2, help="guest threads per worker")
    parser.add_argument(
        "--hostile-cap", type=int, default=0, help="max_concurrency of the hostile route (0: none)"
    )
    parser.add_argument("--access-log", action="store_true", help="server logs each request")
    parser.add_argument(
        "--workdir", type=Path, help="keep the site and server.log here (default: a temp dir)"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    if not 0 < args.duration <= 24 * 3600:
        parser.error("--duration must be between 0 and 86400 seconds")
    quiet = None
    if args.compare_quiet:
        calm = argparse.Namespace(**vars(args))
        calm.hostile = calm.abusive = calm.slow_readers = calm.slow_uploaders = 0
        quiet = soak(calm)
    report = soak(args)
    ok = report["good_errors"] == 0 and report["still_serving"]
    if quiet is not None:
        rss = report["rss_kib"]
        report["quiet"] = quiet["good"]
        loaded_p99, quiet_p99 = report["good"]["p99_ms"], quiet["good"]["p99_ms"]
        report["p99_ratio"] = round(loaded_p99 / quiet_p99, 2) if quiet_p99 else None
        report["rss_ratio"] = round(rss["after"] / rss["baseline"], 3)
        ok = ok and report["p99_ratio"] is not None and report["p99_ratio"] <= 2
        ok = ok and report["rss_ratio"] <= 1.10
    emit_report(report, args.json, print_report)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
