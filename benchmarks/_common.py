"""Helpers shared by the benchmark scripts (not a benchmark itself).

For every script:

- ``build_guest``: a guest source built through ``tools/guestbuild.py`` (cached);
- ``emit_report``: the report as JSON (``--json``) or through the script's table printer;
- ``wasmtime_cache_config``: a private compiled-code cache for the ``wasmtime`` CLI;
- ``free_port``: a free loopback TCP port.

For the HTTP benchmarks driven by ``wrk`` (``bench_gateway``, ``bench_naive``, ``bench_scaling``):

- ``add_wrk_options``, ``check_wrk_options``, ``find_wrk``: the load flags (``--duration``,
  ``--connections``, ``--wrk-threads``, ``--rounds``, ``--warmup``), their checks, and wrk itself;
- ``write_wrk_script``: the Lua script through which wrk reports exact figures (``MARK`` lines);
- ``exit_on_failure``: exit status 130 on Ctrl-C and 1 on a server or wrk failure, said on stderr;
- ``measure_interleaved``: warm-up, then rounds alternating which target goes first;
- ``print_heading``, ``print_row``, ``latency_cells``: the report's first line, the markdown
  table rows, and the columns every table starts with;
- ``warn_if_busy``: the warning that other processes took CPU during the runs.

On top of ``bench_gateway``, for ``bench_naive`` and ``bench_scaling``:

- ``run_accounted``: ``bench_gateway.run_wrk`` plus a per-process account of the server's CPU time
  (``process_cpu``), which also counts child processes the server started and reaped meanwhile;
- ``summarise_targets``: ``bench_gateway.summarise``'s per-target figures, plus CPU shares;
- ``uneven_rounds``: the rounds in which a multi-worker server's workers did not share the load.

``bench_gateway`` imports this module, so this module imports ``bench_gateway`` only inside the
functions that use it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench_gateway import Target

REPO = Path(__file__).resolve().parent.parent
BUSY_WARNING = 0.25  # CPUs used by other processes during a run, above which the report warns
MARK = "BENCH_GATEWAY_JSON "
_TICK = os.sysconf("SC_CLK_TCK")

# wrk calls done() once at the end: one JSON line with exact figures (microseconds).
WRK_SCRIPT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"mean_us":%.1f,'
    .. '"max_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\\n',
    '__MARK__', summary.requests, summary.duration, latency:percentile(50),
    latency:percentile(99), latency.mean, latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""

Run = Callable[[str, Path, "Target", argparse.Namespace, int], dict[str, Any]]


# --- every script -------------------------------------------------------------------------------


def build_guest(source: Path, out: Path | None = None) -> Path:
    """The ``.wasm`` for ``source`` from ``tools/guestbuild.py`` (compiled on a cache miss only)."""
    tools = str(REPO / "tools")
    if tools not in sys.path:
        sys.path.insert(0, tools)
    from guestbuild import build

    return build(source, out=out)


def emit_report(
    report: dict[str, Any], as_json: bool, print_table: Callable[[dict[str, Any]], None]
) -> None:
    """Print ``report`` as indented JSON if ``as_json``, else through ``print_table``."""
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)


def wasmtime_cache_config(tmp: Path) -> Path:
    """A Wasmtime ``cache-config`` file: its compiled-code cache in ``tmp/wasmtime-cache``."""
    config = tmp / "wasmtime-cache.toml"
    config.write_text(f"[cache]\ndirectory = {json.dumps(str(tmp / 'wasmtime-cache'))}\n")
    return config


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing is bound to right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- wrk-based HTTP benchmarks ------------------------------------------------------------------


def add_wrk_options(
    ap: argparse.ArgumentParser, *, duration: int, connections: int, wrk_threads: int, rounds: int
) -> None:
    """Add the load flags every wrk benchmark takes, with these defaults (warm-up: 1 s)."""
    ap.add_argument(
        "--duration", type=int, default=duration, help=f"seconds per run (default: {duration})"
    )
    ap.add_argument(
        "--connections",
        type=int,
        default=connections,
        help=f"wrk connections (default: {connections})",
    )
    ap.add_argument(
        "--wrk-threads", type=int, default=wrk_threads, help=f"wrk threads (default: {wrk_threads})"
    )
    ap.add_argument(
        "--rounds", type=int, default=rounds, help=f"runs per target (default: {rounds})"
    )
    ap.add_argument("--warmup", type=int, default=1, help="warm-up seconds (default: 1)")


def check_wrk_options(
    ap: argparse.ArgumentParser, args: argparse.Namespace, *also_positive: str
) -> None:
    """``ap.error`` unless the load flags (and ``also_positive``) are positive and the
    connections are at least as many as wrk's threads."""
    names = ["rounds", "duration", "connections", "wrk_threads", *also_positive]
    if min(getattr(args, name) for name in names) < 1:
        flags = [f"--{name.replace('_', '-')}" for name in names]
        ap.error(f"{', '.join(flags[:-1])} and {flags[-1]} must be positive")
    if args.connections < args.wrk_threads:
        ap.error("--connections must be at least --wrk-threads")


def find_wrk(prog: str) -> str:
    """The path of ``wrk``; exits with a hint to install it if it is not on PATH."""
    wrk = shutil.which("wrk")
    if wrk is None:
        sys.exit(f"{prog}: wrk is not installed (Debian: apt-get install wrk)")
    return wrk


def write_wrk_script(tmp: Path, close: bool = False) -> Path:
    """``WRK_SCRIPT`` as ``tmp/report.lua``; with ``close``, wrk sends ``Connection: close``."""
    lua = WRK_SCRIPT.replace("__MARK__", MARK)
    if close:  # a new connection per request, so each one is accepted afresh
        lua += 'wrk.headers["Connection"] = "close"\n'
    script = tmp / "report.lua"
    script.write_text(lua)
    return script


@contextlib.contextmanager
def exit_on_failure(prog: str) -> Iterator[None]:
    """Exit with status 130 on Ctrl-C and 1 on a ``RuntimeError``, saying so on stderr.

    Put it outside ``bench_gateway.running``, so that the servers are stopped first."""
    try:
        yield
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; servers stopped", file=sys.stderr)
        raise SystemExit(130) from None
    except RuntimeError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        raise SystemExit(1) from None


def rps(result: dict[str, Any]) -> float:
    """Requests per second of one wrk run."""
    return float(result["requests"]) / (result["duration_us"] / 1e6)


def measure_interleaved(
    targets: Sequence[Target],
    args: argparse.Namespace,
    wrk: str,
    script: Path,
    run: Run,
    digits: int = 1,
) -> dict[str, list[dict[str, Any]]]:
    """One unrecorded ``args.warmup`` run per target, then ``args.rounds`` rounds of
    ``args.duration`` seconds each, every run through ``run`` (``bench_gateway.run_wrk`` or
    ``run_accounted``); round r starts r targets further along, so with two targets the first
    place alternates. Progress (req/s to ``digits`` decimals) goes to stderr, unless
    ``args.json``."""
    for t in targets:
        if args.warmup > 0:
            run(wrk, script, t, args, args.warmup)
    runs: dict[str, list[dict[str, Any]]] = {t.key: [] for t in targets}
    for r in range(args.rounds):
        for i in range(len(targets)):
            t = targets[(r + i) % len(targets)]
            result = run(wrk, script, t, args, args.duration)
            runs[t.key].append(result)
            if not args.json:
                cpus = f"  CPUs {format_cpus(result['cpus'])}" if "cpus" in result else ""
                steal = f"  steal {result['steal_cpus']:.3f}" if "steal_cpus" in result else ""
                print(
                    f"  round {r + 1}: {t.label:<28} {rps(result):>9.{digits}f} req/s"
                    f"  p99 {result['p99_us'] / 1000:.2f} ms{steal}{cpus}",
                    file=sys.stderr,
                )
    return runs


def print_heading(
    report: dict[str, Any], subject: str, connection: str = "keep-alive", per: str = ""
) -> None:
    """The report's first line (what was loaded, how, on what) and a blank line."""
    load = report["load"]
    print(
        f"{subject} over HTTP/1.1 {connection}: wrk -t{load['threads']} -c{load['connections']}"
        f" -d{load['duration_s']}s, {load['rounds']} interleaved rounds{per};"
        f" Python {report['python']}, {report['machine']}"
    )
    print()


def print_row(cells: Sequence[object]) -> None:
    """One row of a markdown table."""
    print("| " + " | ".join(str(c) for c in cells) + " |")


def latency_cells(s: dict[str, Any], digits: int) -> list[str]:
    """A target's first columns: label, req/s (to ``digits`` decimals), p50, p99, p99 by round."""
    by_round = " / ".join(f"{r['p99_us'] / 1000:.1f}" for r in s["rounds"])
    return [
        s["label"],
        f"{s['rps']:,.{digits}f}",
        f"{s['p50_ms']:.2f} ms",
        f"{s['p99_ms']:.2f} ms",
        f"{by_round} ms",
    ]


def warn_if_busy(other_cpus_max: float) -> None:
    """Warn that the figures are skewed if other processes used over ``BUSY_WARNING`` CPUs."""
    if other_cpus_max > BUSY_WARNING:
        print(
            f"warning: other processes used up to {other_cpus_max:.2f} CPUs during a run;"
            " the machine was not quiet and these figures are skewed"
        )


# --- CPU time by process (bench_naive, bench_scaling) -------------------------------------------


@dataclass(frozen=True)
class ProcCpu:
    role: str
    own_s: float  # utime + stime of the process itself
    reaped_s: float  # cutime + cstime: children it has waited for


def _role(pid: int, pgid: int) -> str:
    if pid == pgid:
        return "main"
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return "?"
    cmd = b" ".join(argv)
    if b"resource_tracker" in cmd:
        return "resource tracker"
    if b"multiprocessing" in cmd:
        return "worker"
    return os.path.basename(argv[0].decode(errors="replace")) or "?"


def process_cpu(pgid: int) -> dict[int, ProcCpu]:
    """CPU seconds of every live process in a process group, by pid (from ``/proc``)."""
    out: dict[int, ProcCpu] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()  # fields[0] is stat(5)'s field 3
        if int(fields[2]) != pgid:
            continue
        pid = int(entry.name)
        out[pid] = ProcCpu(
            _role(pid, pgid),
            (int(fields[11]) + int(fields[12])) / _TICK,
            (int(fields[13]) + int(fields[14])) / _TICK,
        )
    return out


def run_accounted(
    wrk: str, script: Path, target: Target, args: argparse.Namespace, duration: int
) -> dict[str, Any]:
    """``bench_gateway.run_wrk``, with the server's CPU time broken down by process.

    The target is paused (SIGSTOP) before and after ``run_wrk``, so the two snapshots bracket
    exactly the run. ``server_cpu_s`` is replaced by the complete figure, which also counts the
    children the server reaped meanwhile (``run_wrk`` sees live processes only: right for
    wasmgate's workers, blind to a process per request); ``other_cpus`` is corrected to match.
    ``cpus`` gives CPU shares (CPU-seconds per second of load) by role: each live process of the
    group separately, the exited children together, and wrk.
    """
    from bench_gateway import run_wrk

    assert target.proc is not None
    before = process_cpu(target.proc.pid)
    result = run_wrk(wrk, script, target, args, duration)
    after = process_cpu(target.proc.pid)
    shares: dict[str, list[float]] = {}
    own = reaped = 0.0
    for pid, now in after.items():
        then = before.get(pid, ProcCpu(now.role, 0.0, 0.0))
        own += now.own_s - then.own_s
        reaped += now.reaped_s - then.reaped_s
        share = round((now.own_s - then.own_s) / duration, 3)
        if share >= 0.005:
            shares.setdefault(now.role, []).append(share)
    for role in shares:
        shares[role].sort(reverse=True)
    if reaped > 0:
        shares["exited children"] = [round(reaped / duration, 3)]
    shares["wrk"] = [round(result["wrk_cpu_s"] / duration, 3)]
    total = own + reaped
    extra = max(0.0, total - result["server_cpu_s"])
    result["other_cpus"] = round(max(0.0, result["other_cpus"] - extra / duration), 2)
    result["server_cpu_s"] = round(total, 3)
    result["cpus"] = shares
    return result


def uneven_rounds(rounds: Sequence[dict[str, Any]], workers: int) -> int:
    """Rounds in which ``workers`` worker processes did not share the load: fewer of them busy,
    or one doing under a third of the busiest one's work. Keep-alive connections stay with the
    worker that accepted them, so a few connections can split unevenly between workers."""
    return sum(
        1 for r in rounds if len(w := r["cpus"].get("worker", [])) < workers or w[-1] < w[0] / 3
    )


def format_cpus(cpus: dict[str, list[float]]) -> str:
    """``{"worker": [0.98, 0.97], "wrk": [0.01]}`` as ``worker 0.98+0.97, wrk 0.01``."""
    return ", ".join(f"{role} {'+'.join(f'{s:.2f}' for s in v)}" for role, v in cpus.items())


def summarise_targets(
    targets: Sequence[Target], runs: dict[str, list[dict[str, Any]]], args: argparse.Namespace
) -> dict[str, Any]:
    """``bench_gateway.summarise`` without its gateway-specific ratios and goal, plus, per
    target, the median over rounds of the server's total CPU share (``server_cpus``) and of
    wrk's (``wrk_cpus``), and the last round's shares by process (``cpus``)."""
    from bench_gateway import summarise

    report = summarise(targets, runs, {}, args)
    for key, s in report["targets"].items():
        rs = runs[key]
        s["server_cpus"] = round(
            statistics.median(r["server_cpu_s"] for r in rs) / args.duration, 2
        )
        s["wrk_cpus"] = round(statistics.median(r["wrk_cpu_s"] for r in rs) / args.duration, 2)
        s["cpus"] = rs[-1]["cpus"]
    for name in ("ratios", "goal", "skipped"):
        report.pop(name, None)
    return report


def per_call(fn: Callable[[], None], n: int) -> float:
    """Microseconds per call of ``fn`` over ``n`` calls (wall clock)."""
    import time

    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n * 1e6


def in_process_args(doc: str) -> argparse.Namespace:
    """The flags of the in-process per-request benchmarks: --rounds, --n, --json."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--json", action="store_true")
    return parser.parse_args()
