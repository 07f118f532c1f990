"""Multi-core scaling of ``wasmgate serve`` for a CPU-bound guest: N worker processes against 1.

Serves ``tests/guests/cpu_spin.c`` (pure integer arithmetic, about 6 ms per request by default,
then a short text response) at ``/spin`` from four servers started by the script on free loopback
ports, and reports two comparisons of ``--workers N`` (default: the number of cores) against
``--workers 1``, each between two servers that differ only in ``--workers``:

- **process scaling**: ``--threads 1`` on both, so each worker runs one guest at a time and N
  workers can use at most N cores, one worker one core. This is what more processes buy, and the
  figure the goal applies to: at least 1.8x the req/s of one worker at N = 2.
- **default settings**: the gateway's default ``--threads`` (the number of cores, at least 2) on
  both, for context: wasmtime-py releases the GIL while a guest runs, so one worker with several
  threads already keeps every core busy with a CPU-bound guest, and the ratio is near 1 by
  construction (a note says when one worker used more than 1.2 CPUs).

Each server is loaded by ``wrk`` (default ``-t1 -c8`` over keep-alive; ``--close`` sends
``Connection: close``, a new connection per request) for ``--duration`` seconds per round, after
a 1 s unrecorded warm-up. One comparison is measured after the other, each in ``--rounds`` rounds
that alternate which of its two servers goes first; the servers not being measured are paused
(SIGSTOP). Reports, per comparison, req/s, p50 and p99 of both servers, the ratio of req/s N/1,
each one's CPU time per request and the ratio of those, and CPU shares (the server's processes
one by one, and wrk) from ``/proc``.

wrk runs on the same cores as the server, so neither configuration has all N cores to itself.
With a guest this heavy wrk needs about 0.01 CPU, which the table shows; the server's CPU time
per request does not depend on how the cores are shared, so compare it too: equal CPU per request
at both settings means the extra workers add no overhead of their own, and a shortfall in the
ratio is cores not kept busy, which the per-process shares locate. A keep-alive connection stays
with the worker that accepted it; the server gives each worker a socket of its own
(``SO_REUSEPORT``) and the kernel places each connection by a hash, so 8 connections rarely leave
a worker without any. A note counts the rounds in which a worker did under a third of the busiest
one's work; ``--close`` (every request accepted afresh) rules connection placement out.

    .venv/bin/python benchmarks/bench_scaling.py [--duration 8] [--rounds 3] [--workers N]
        [--close] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
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
    write_wrk_script,
)
from bench_gateway import Target, running

REPO = Path(__file__).resolve().parent.parent
GUEST = REPO / "tests" / "guests" / "cpu_spin.c"
GOAL_WORKERS = 2
GOAL_RATIO = 1.8  # process scaling: req/s at --workers 2 over --workers 1, at least
BUSY_ONE_WORKER = 1.2  # CPUs used by --workers 1 above which the report says why


@dataclass(frozen=True)
class Comparison:
    key: str
    title: str
    threads: int | None  # --threads of both servers; None: the gateway's default


COMPARISONS = (
    Comparison("process_scaling", "process scaling", 1),
    Comparison("default_settings", "default settings", None),
)


def default_threads(toml: Path) -> int:
    """The ``--threads`` that ``wasmgate serve`` uses when none is given."""
    from wasmgate.config import GatewayConfig

    return GatewayConfig(modules_toml=toml).threads


def make_targets(
    tmp: Path, wasm: Path, args: argparse.Namespace
) -> tuple[dict[str, list[Target]], int]:
    """Per comparison, its two servers (N workers, then 1); and the default ``--threads``."""
    toml = tmp / "modules.toml"
    toml.write_text(
        f"[[module]]\nroute = {json.dumps('/spin')}\nmodule = {json.dumps(str(wasm))}\n"
    )
    base = [sys.executable, "-m", "wasmgate", "serve", "-c", str(toml), "--no-access-log"]
    base += ["--cache-dir", str(tmp / "wasmgate-cache")]
    path = f"/spin?n={args.spin}"
    expect = f"rounds={args.spin} result=".encode()
    targets: dict[str, list[Target]] = {}
    for c in COMPARISONS:
        threads = ["--threads", str(c.threads)] if c.threads else []
        suffix = f"-{c.threads}t" if c.threads else ""
        targets[c.key] = [
            Target(
                f"{n}w{suffix}",
                " ".join(["wasmgate serve --workers", str(n), *threads]),
                [*base, "--workers", str(n), *threads, "-l"],
                path,
                expect,
            )
            for n in (args.workers, 1)
        ]
    return targets, default_threads(toml)


def flatten(targets: dict[str, list[Target]]) -> list[Target]:
    """Every comparison's servers in one list."""
    return [t for ts in targets.values() for t in ts]


def compare(
    c: Comparison, stats: dict[str, dict[str, Any]], targets: Sequence[Target], workers: int
) -> dict[str, Any]:
    """One comparison's figures: its two targets' and the ratios N/1."""
    many, one = (stats[t.key] for t in targets)
    return {
        "title": c.title,
        "threads": c.threads or "default",
        "targets": {t.key: stats[t.key] for t in targets},
        "rps_ratio": round(many["rps"] / one["rps"], 3) if one["rps"] else None,
        "cpu_per_request_ratio": round(
            many["server_cpu_us_per_request"] / one["server_cpu_us_per_request"], 3
        ),
        "uneven_rounds": uneven_rounds(many["rounds"], workers),
        "other_cpus_max": max(s["other_cpus_max"] for s in (many, one)),
    }


def build_report(
    targets: dict[str, list[Target]],
    runs: dict[str, list[dict[str, Any]]],
    args: argparse.Namespace,
    threads_default: int,
) -> dict[str, Any]:
    report = summarise_targets(flatten(targets), runs, args)
    stats = report.pop("targets")
    report["guest"] = {"source": str(GUEST.relative_to(REPO)), "rounds_per_request": args.spin}
    report["workers"] = args.workers
    report["default_threads"] = threads_default
    report["connection"] = "close" if args.close else "keep-alive"
    report["comparisons"] = {
        c.key: compare(c, stats, targets[c.key], args.workers) for c in COMPARISONS
    }
    ratio = report["comparisons"]["process_scaling"]["rps_ratio"]
    goal: dict[str, Any] = {
        "comparison": "process_scaling",
        "workers": GOAL_WORKERS,
        "min_ratio": GOAL_RATIO,
    }
    if args.workers == GOAL_WORKERS and ratio is not None:
        goal["ratio"] = ratio
        goal["met"] = ratio >= GOAL_RATIO
    report["goal"] = goal
    return report


def print_comparison(report: dict[str, Any], key: str) -> None:
    c, n = report["comparisons"][key], report["workers"]
    threads = (
        f"--threads {c['threads']} on both"
        if c["threads"] != "default"
        else f"the default --threads ({report['default_threads']}) on both"
    )
    print(f"{c['title']}: --workers {n} vs --workers 1, {threads}")
    print()
    print(
        "| target | req/s | p50 | p99 | p99 by round | errors | server CPU/req | server CPUs"
        " | wrk CPUs | CPUs by process (last round) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for s in c["targets"].values():
        print_row(
            [
                *latency_cells(s, digits=1),
                s["errors"],
                f"{s['server_cpu_us_per_request'] / 1000:.2f} ms",
                f"{s['server_cpus']:.2f}",
                f"{s['wrk_cpus']:.2f}",
                format_cpus(s["cpus"]),
            ]
        )
    print()
    rps_ratio = "n/a" if c["rps_ratio"] is None else f"{c['rps_ratio']:.3f}x"
    print(
        f"ratio {n}w/1w of req/s: {rps_ratio}; of server CPU per request:"
        f" {c['cpu_per_request_ratio']:.3f}x"
    )
    if c["uneven_rounds"]:
        print(
            f"note: in {c['uneven_rounds']} round(s) of --workers {n} a worker did under a third"
            " of the busiest one's work: keep-alive connections stay with the worker that"
            " accepted them (--close spreads them)"
        )


def print_table(report: dict[str, Any]) -> None:
    guest = report["guest"]
    print_heading(
        report,
        f"CPU-bound guest ({guest['source']}, n={guest['rounds_per_request']})",
        connection=report["connection"],
        per=" per comparison",
    )
    print_comparison(report, "process_scaling")
    goal = report["goal"]
    if "met" in goal:
        verdict = "met" if goal["met"] else "NOT met"
        print(
            f"goal: process scaling, --workers {goal['workers']} >= {goal['min_ratio']}x"
            f" --workers 1: {verdict} ({goal['ratio']:.3f}x)"
        )
    else:
        print(
            f"goal: process scaling, --workers {goal['workers']} >= {goal['min_ratio']}x"
            f" --workers 1: not judged at --workers {report['workers']}"
        )
    print()
    print_comparison(report, "default_settings")
    default = report["comparisons"]["default_settings"]
    one = list(default["targets"].values())[1]
    if one["server_cpus"] > BUSY_ONE_WORKER:
        print(
            f"note: --workers 1 alone used {one['server_cpus']:.2f} CPUs: the guest runs outside"
            " the GIL, so one worker's threads already spread over the cores, and the ratio here"
            " is near 1 by construction (process scaling above is the measure of more workers)"
        )
    warn_if_busy(report["other_cpus_max"])


def main(argv: Sequence[str] | None = None) -> int:
    cores = os.cpu_count() or 1
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_wrk_options(ap, duration=8, connections=8, wrk_threads=1, rounds=3)
    ap.add_argument(
        "--workers", type=int, default=cores, help=f"N, compared with 1 (default: cores = {cores})"
    )
    ap.add_argument(
        "--spin",
        type=int,
        default=3_000_000,
        help="guest arithmetic rounds per request (default: 3000000, about 6 ms)",
    )
    ap.add_argument(
        "--close",
        action="store_true",
        help="send Connection: close (a new connection per request) instead of keep-alive",
    )
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    args = ap.parse_args(argv)
    check_wrk_options(ap, args, "spin")
    if args.workers < 2:
        ap.error(f"--workers must be at least 2 to compare with 1 (this machine has {cores} CPUs)")
    wrk = find_wrk("bench_scaling")

    wasm = build_guest(GUEST)
    with tempfile.TemporaryDirectory(prefix="bench-scaling-") as tmp_name:
        tmp = Path(tmp_name)
        script = write_wrk_script(tmp, close=args.close)
        targets, threads_default = make_targets(tmp, wasm, args)
        runs: dict[str, list[dict[str, Any]]] = {}
        with exit_on_failure("bench_scaling"), running(flatten(targets), tmp):
            for c in COMPARISONS:
                if not args.json:
                    print(f"{c.title}:", file=sys.stderr)
                runs |= measure_interleaved(targets[c.key], args, wrk, script, run_accounted)

    emit_report(build_report(targets, runs, args, threads_default), args.json, print_table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
