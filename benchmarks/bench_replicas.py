"""Replicas of ``wasmgate serve`` behind HAProxy on loopback: what they survive, and what they buy.

Starts 3 replicas (``wasmgate serve --workers 1``, each its own process on its own port) and
HAProxy in front of them with the configuration of ``deploy/haproxy/replicas.py`` (health checks
on ``/healthz`` every 200 ms, retries with redispatch, GET replayed on another replica when its
own died), then:

1. **Scenarios under load** from the bounded Python client of ``replicas.py`` (``--connections``
   keep-alive connections, alternating GET and POST, on a guest that sleeps 20 ms in a host call):
   - ``rolling``: each replica in turn taken out of HAProxy (``drain``), SIGTERM, started again,
     put back: requests lost, GET and POST;
   - ``bare-sigterm``: the same without telling HAProxy first: lost GETs (replayed by HAProxy)
     and lost POSTs (not replayed: the cost of skipping the drain);
   - ``kill-9``: one replica killed: failures against the requests in flight at that instant, and
     how long until HAProxy marks it down;
   - ``sighup``: a new modules.toml (another module on the route) rolled out replica by replica
     with SIGHUP: errors, and how many answers came from each version.
2. **Throughput** with 1, 2 and 3 replicas in service (the others in HAProxy maintenance),
   measured by ``wrk -t1 -c<--wrk-connections>`` through HAProxy, plus one replica straight
   (no balancer) for the balancer's own cost, for two guests: ``hello`` (answers at once: CPU
   bound) and ``sleep`` (20 ms in a host call: bound by each replica's ``--threads``). Rounds
   alternate the order. On a 2-core machine running wrk, HAProxy and the replicas, ``hello``
   cannot scale past the cores: the table shows where it flattens, and the CPU used by the
   replicas, HAProxy and wrk against the CPU other processes took meanwhile (a shared machine).

    .venv/bin/python benchmarks/bench_replicas.py [--duration 5] [--rounds 2] [--json]

Needs ``haproxy`` (Debian: apt-get install haproxy; tools/setup.sh installs it) and, for the
throughput part, ``wrk`` (apt-get install wrk; without it that part is skipped and says so).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import wasmtime
from _common import MARK, emit_report, write_wrk_script

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "deploy" / "haproxy"))

import replicas as rp  # noqa: E402  (deploy/haproxy/replicas.py)

SLEEP_MS = 20
THREADS = 4


def machine_busy_seconds() -> float:
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def write_site(d: Path) -> None:
    for name, body, sleep in (
        ("v1", "v1\n", SLEEP_MS),
        ("v2", "v2\n", SLEEP_MS),
        ("hello", "hello\n", 0),
    ):
        (d / f"{name}.wasm").write_bytes(wasmtime.wat2wasm(rp.sleep_guest_wat(body, sleep)))


def toml(d: Path, version: str) -> str:
    return (
        f'[[module]]\nroute = "/work"\nmodule = "{d / f"{version}.wasm"}"\n\n'
        f'[[module]]\nroute = "/sleep"\nmodule = "{d / "v1.wasm"}"\n\n'
        f'[[module]]\nroute = "/hello"\nmodule = "{d / "hello.wasm"}"\n'
    )


# --- scenarios ---------------------------------------------------------------------------------


def under_load(
    lb: rp.Haproxy,
    action: Callable[[], None],
    connections: int,
    methods: tuple[str, ...] = ("GET", "POST"),
    settle: float = 1.0,
) -> tuple[list[rp.Request], float, float]:
    out: list[list[rp.Request]] = []
    done = threading.Event()

    def load() -> None:
        out.append(
            rp.run_load(
                lb.port,
                "/work",
                connections=connections,
                duration=120,
                max_requests=200_000,
                methods=methods,
                stop=done,
            )
        )

    t = threading.Thread(target=load, daemon=True)
    t.start()
    time.sleep(0.5)
    began = time.monotonic()
    try:
        action()
    finally:
        ended = time.monotonic()
        time.sleep(settle)
        done.set()
        t.join(60)
    return out[0], began, ended


def counts(records: Sequence[rp.Request]) -> dict[str, Any]:
    bad = [r for r in records if not r.ok]
    return {
        "requests": len(records),
        "failed": len(bad),
        "failed_get": sum(r.method == "GET" for r in bad),
        "failed_post": sum(r.method == "POST" for r in bad),
        "seconds": round(max(r.end for r in records) - min(r.start for r in records), 2),
    }


def scenarios(
    lb: rp.Haproxy, replicas: list[rp.Replica], site: Path, connections: int
) -> dict[str, Any]:
    report: dict[str, Any] = {}

    def rolling(drain: bool) -> Callable[[], None]:
        def roll() -> None:
            for r in replicas:
                if drain:
                    lb.drain(r.name)
                if r.stop() != 0:
                    raise RuntimeError(f"{r.name} did not drain cleanly:\n{r.tail()}")
                r.start()
                r.wait_healthy()
                if drain:
                    lb.ready(r.name)
                lb.wait_state(r.name, "UP")

        return roll

    records, _, _ = under_load(lb, rolling(True), connections)
    report["rolling"] = counts(records)
    records, _, _ = under_load(lb, rolling(False), connections)
    report["bare-sigterm"] = counts(records)

    victim = replicas[1]
    down_at: list[float] = []

    def kill() -> None:
        victim.kill()
        lb.wait_state(victim.name, "DOWN")
        down_at.append(time.monotonic())

    records, killed, _ = under_load(lb, kill, connections, settle=1.5)
    in_flight = [r for r in records if r.start <= killed < r.end]
    after = [r for r in records if r.start > killed]
    report["kill-9"] = {
        **counts(records),
        "in_flight_at_kill": len(in_flight),
        "in_flight_post_at_kill": sum(r.method == "POST" for r in in_flight),
        "failed_after_kill_started": sum(not r.ok for r in after),
        "marked_down_after_s": round(down_at[0] - killed, 2),
    }
    victim.start()
    victim.wait_healthy()
    lb.wait_state(victim.name, "UP")

    def rollout() -> None:
        for r in replicas:
            r.toml.write_text(toml(site, "v2"))
            r.signal(signal.SIGHUP)
            rp.wait_until(f"{r.name} on v2", lambda r=r: r.get("/work")[1] == b"v2\n", 15)

    records, _, _ = under_load(lb, rollout, connections)
    report["sighup"] = {
        **counts(records),
        "answers_v1": sum(r.body == b"v1\n" for r in records),
        "answers_v2": sum(r.body == b"v2\n" for r in records),
    }
    return report


# --- throughput --------------------------------------------------------------------------------


def process_cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time of these processes so far (those gone count 0)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def run_wrk(
    wrk: str, script: Path, url: str, args: argparse.Namespace, pids: Sequence[int]
) -> dict[str, Any]:
    argv = [wrk, "-t1", f"-c{args.wrk_connections}", f"-d{args.duration}s", "--latency"]
    busy0 = machine_busy_seconds()
    own0 = process_cpu_seconds(pids)
    wrk0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(
        [*argv, "-s", str(script), url],
        capture_output=True,
        timeout=args.duration + 60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    busy = machine_busy_seconds() - busy0
    wrk1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cpu = (wrk1.ru_utime - wrk0.ru_utime) + (wrk1.ru_stime - wrk0.ru_stime)
    own = process_cpu_seconds(pids) - own0 + wrk_cpu
    lines = [x for x in proc.stdout.decode().splitlines() if x.startswith(MARK)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr.decode()}")
    r: dict[str, Any] = json.loads(lines[-1][len(MARK) :])
    errors = sum(r[k] for k in ("connect", "read", "write", "status", "timeout"))
    return {
        "rps": r["requests"] / (r["duration_us"] / 1e6),
        "p50_ms": r["p50_us"] / 1000,
        "p99_ms": r["p99_us"] / 1000,
        "errors": errors,
        "own_cpus": own / args.duration,
        "other_cpus": max(0.0, busy - own) / args.duration,
    }


def throughput(
    lb: rp.Haproxy,
    replicas: list[rp.Replica],
    args: argparse.Namespace,
    tmp: Path,
    routes: Sequence[str],
) -> dict[str, Any]:
    wrk = shutil.which("wrk")
    if wrk is None:
        return {"skipped": "wrk is not installed (apt-get install wrk)"}
    script = write_wrk_script(tmp)
    names = [r.name for r in replicas]
    targets = ["direct-1", "lb-1", "lb-2", "lb-3"]
    out: dict[str, Any] = {}
    for route in routes:
        runs: dict[str, list[dict[str, Any]]] = {t: [] for t in targets}
        for rnd in range(args.rounds):
            order = targets[rnd % len(targets) :] + targets[: rnd % len(targets)]
            for t in order:
                if t == "direct-1":
                    url = f"http://{replicas[0].address}/{route}"
                else:
                    k = int(t.split("-")[1])
                    lb.enable_only(names[:k], names)
                    for name in names[:k]:
                        lb.wait_state(name, "UP")
                    url = f"{lb.base}/{route}"
                pids = [r.proc.pid for r in replicas if r.proc is not None]
                if lb.proc is not None:
                    pids.append(lb.proc.pid)
                runs[t].append(run_wrk(wrk, script, url, args, pids))
                if not args.json:
                    print(f"  {route} {t}: {runs[t][-1]['rps']:,.0f} req/s", file=sys.stderr)
        lb.enable_only(names, names)
        out[route] = {
            t: {
                "rps": round(statistics.median(x["rps"] for x in rs)),
                "p50_ms": round(statistics.median(x["p50_ms"] for x in rs), 2),
                "p99_ms": round(statistics.median(x["p99_ms"] for x in rs), 2),
                "errors": sum(x["errors"] for x in rs),
                "own_cpus": round(statistics.median(x["own_cpus"] for x in rs), 2),
                "other_cpus": round(statistics.median(x["other_cpus"] for x in rs), 2),
                "rounds_rps": [round(x["rps"]) for x in rs],
            }
            for t, rs in runs.items()
        }
        base = out[route]["lb-1"]["rps"]
        for t in ("lb-2", "lb-3"):
            out[route][t]["vs_lb_1"] = round(out[route][t]["rps"] / base, 2) if base else None
    return out


# --- report ------------------------------------------------------------------------------------


def print_table(report: dict[str, Any]) -> None:
    print(
        f"# bench_replicas: 3 replicas (--workers 1 --threads {THREADS}; the sleeping guest's "
        f"with --no-inline) behind HAProxy "
        f"{report['haproxy']}, {report['cpus']} CPUs\n"
    )
    s = report["scenarios"]
    print("| scenario | requests | failed (GET / POST) | notes |")
    print("|---|---|---|---|")
    for key, note in (
        ("rolling", "drain in HAProxy, SIGTERM, start, ready; each replica in turn"),
        ("bare-sigterm", "SIGTERM, start; HAProxy not told first"),
        ("kill-9", ""),
        ("sighup", ""),
    ):
        row = s[key]
        if key == "kill-9":
            note = (
                f"in flight at the kill: {row['in_flight_at_kill']} "
                f"({row['in_flight_post_at_kill']} POST); failures among requests started "
                f"after it: {row['failed_after_kill_started']}; marked down after "
                f"{row['marked_down_after_s']} s"
            )
        if key == "sighup":
            note = f"answers v1 / v2: {row['answers_v1']} / {row['answers_v2']}"
        print(
            f"| {key} | {row['requests']} | {row['failed']} "
            f"({row['failed_get']} / {row['failed_post']}) | {note} |"
        )
    t = report["throughput"]
    if "skipped" in t:
        print(f"\nthroughput: skipped ({t['skipped']})")
        return
    for route, rows in t.items():
        print(f"\n{route}: wrk -t1 -c{report['wrk_connections']}, median of rounds\n")
        print(
            "| target | req/s | vs 1 replica | p50 ms | p99 ms | errors "
            "| CPUs (ours / others) | rounds |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for name, row in rows.items():
            ratio = f"{row['vs_lb_1']:.2f}x" if "vs_lb_1" in row else "-"
            print(
                f"| {name} | {row['rps']:,} | {ratio} | {row['p50_ms']} | {row['p99_ms']} | "
                f"{row['errors']} | {row['own_cpus']} / {row['other_cpus']} | "
                f"{row['rounds_rps']} |"
            )


@contextlib.contextmanager
def running(
    tmp: Path, label: str, flags: Sequence[str]
) -> Iterator[tuple[rp.Haproxy, list[rp.Replica]]]:
    """3 replicas with ``flags`` (and --workers 1 --threads THREADS) and HAProxy before them."""
    d = tmp / label
    d.mkdir()
    replicas = []
    for i in range(3):
        (d / f"r{i}").mkdir()
        toml_path = d / f"r{i}" / "modules.toml"
        toml_path.write_text(toml(tmp, "v1"))
        replicas.append(
            rp.Replica(
                f"r{i}",
                toml_path,
                rp.free_port(),
                args=("--workers", "1", "--threads", str(THREADS), *flags),
                env={"WASMGATE_CACHE_DIR": str(tmp / "cache")},
            )
        )
    with rp.cluster(d, replicas) as lb:
        yield lb, replicas


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run (default: 5)")
    ap.add_argument("--rounds", type=int, default=2, help="throughput rounds (default: 2)")
    ap.add_argument("--connections", type=int, default=6, help="scenario client connections")
    ap.add_argument("--wrk-connections", type=int, default=32, help="wrk connections")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if min(args.duration, args.rounds, args.connections, args.wrk_connections) < 1:
        ap.error("--duration, --rounds, --connections and --wrk-connections must be positive")
    with tempfile.TemporaryDirectory(prefix="bench-replicas-") as tmp_name:
        tmp = Path(tmp_name)
        write_site(tmp)
        try:
            # The sleeping guest's replicas run --no-inline (it must not sleep on the event loop);
            # hello's run the defaults, where quick guests run inline.
            with running(tmp, "sleepers", ("--no-inline",)) as (lb, replicas):
                version = subprocess.run(
                    [lb.binary, "-v"], capture_output=True, text=True, check=False
                ).stdout.split()[2]
                report: dict[str, Any] = {
                    "haproxy": version,
                    "cpus": os.cpu_count(),
                    "wrk_connections": args.wrk_connections,
                    "scenarios": scenarios(lb, replicas, tmp, args.connections),
                    "throughput": throughput(lb, replicas, args, tmp, ["sleep"]),
                }
            with running(tmp, "hello", ()) as (lb, replicas):
                hello = throughput(lb, replicas, args, tmp, ["hello"])
                report["throughput"] = {**hello, **report["throughput"]}
        except RuntimeError as e:
            print(f"bench_replicas: {e}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("bench_replicas: interrupted; replicas stopped", file=sys.stderr)
            return 130
    emit_report(report, args.json, print_table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
