"""Three ``wasmgate serve`` replicas behind a real HAProxy on loopback, under load from a bounded
client (``deploy/haproxy/replicas.py``): a rolling restart loses no request; ``kill -9`` of one
replica costs at most the requests in flight on it, then traffic moves on; a configuration change
rolled out replica by replica with SIGHUP answers no error.

The guest sleeps SLEEP_MS in a host call per request, so requests are in flight on every replica
at any moment without keeping the two cores busy. The load mixes GET (which HAProxy may send
again to another replica, being idempotent) and POST (which it must not replay)."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import wasmtime

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "deploy" / "haproxy"))

import replicas as rp  # noqa: E402  (deploy/haproxy/replicas.py, through the path set above)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

SLEEP_MS = 20
CONNECTIONS = 6
ROUTE = "/work"


def _toml(wasm: Path) -> str:
    return f'[[module]]\nroute = "{ROUTE}"\nmodule = "{wasm}"\n'


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("replicas")
    for version in ("v1", "v2"):
        wat = rp.sleep_guest_wat(f"{version}\n", SLEEP_MS)
        (d / f"{version}.wasm").write_bytes(wasmtime.wat2wasm(wat))
    return d


@pytest.fixture(scope="module")
def cluster(site: Path, cache_dir: Path) -> Iterator[tuple[rp.Haproxy, list[rp.Replica]]]:
    if rp.shutil.which("haproxy") is None and not Path("/usr/sbin/haproxy").exists():
        pytest.fail(
            "haproxy is not installed: tools/setup.sh installs it (apt-get install haproxy)"
        )
    replicas = []
    for i in range(3):
        d = site / f"r{i}"
        d.mkdir()
        (d / "modules.toml").write_text(_toml(site / "v1.wasm"))
        replicas.append(
            rp.Replica(
                f"r{i}",
                d / "modules.toml",
                rp.free_port(),
                # --no-inline: the guest sleeps, and must not do so on the event loop (a route
                # is tried inline first, and a burst of inline sleeps would stall /healthz).
                args=("--workers", "1", "--threads", "8", "--no-inline"),
                env={"WASMGATE_CACHE_DIR": str(cache_dir)},
            )
        )
    with rp.cluster(site, replicas) as lb:
        yield lb, replicas


def _under_load(
    lb: rp.Haproxy,
    action: Callable[[], Any],
    *,
    settle: float = 1.0,
    max_requests: int = 20000,
    methods: tuple[str, ...] = ("GET", "POST"),
) -> tuple[list[rp.Request], float, float]:
    """Run ``action`` while the client loads HAProxy; the load starts 0.5 s before the action
    and goes on ``settle`` s after it. Returns the records and when the action began and ended."""
    out: list[list[rp.Request]] = []
    done = threading.Event()
    started = threading.Event()

    def load() -> None:
        started.set()
        out.append(
            rp.run_load(
                lb.port,
                ROUTE,
                connections=CONNECTIONS,
                duration=120,
                max_requests=max_requests,
                methods=methods,
                stop=done,
            )
        )

    t = threading.Thread(target=load)
    t.start()
    started.wait()
    time.sleep(0.5)
    began = time.monotonic()
    try:
        action()
    finally:
        ended = time.monotonic()
        time.sleep(settle)
        done.set()
        t.join(30)
    assert not t.is_alive()
    (records,) = out
    return records, began, ended


def _failures(records: list[rp.Request]) -> list[rp.Request]:
    return [r for r in records if not r.ok]


def _describe(records: list[rp.Request]) -> str:
    bad = _failures(records)
    return f"{len(records)} requests, {len(bad)} failed: " + "; ".join(
        f"{r.method} status={r.status} {r.error}" for r in bad[:5]
    )


def test_rolling_restart_loses_no_request(cluster: tuple[rp.Haproxy, list[rp.Replica]]) -> None:
    """Each replica in turn: out of the balancer (drain), SIGTERM, started again, back in. GET and
    POST: none lost."""
    lb, replicas = cluster

    def roll() -> None:
        for r in replicas:
            lb.drain(r.name)
            assert r.stop() == 0, r.tail()  # SIGTERM: drain, exit 0
            r.start()
            r.wait_healthy()
            lb.ready(r.name)
            lb.wait_state(r.name, "UP")

    starts = [r.starts for r in replicas]
    records, _, ended = _under_load(lb, roll)
    assert len(records) > 100, _describe(records)
    assert not _failures(records), _describe(records)
    assert {r.method for r in records} == {"GET", "POST"}
    # Every replica, once restarted, took its share again.
    late = [r for r in records if r.start > ended]
    assert {r.replica for r in late} == {r.name for r in replicas}, late[:5]
    assert [r.starts for r in replicas] == [n + 1 for n in starts]


def test_bare_sigterm_loses_no_get(cluster: tuple[rp.Haproxy, list[rp.Replica]]) -> None:
    """SIGTERM straight away, the balancer not told: it sees the replica stop listening, and the
    GETs caught in that moment (reset in the replica's accept queue, or sent on a connection it
    was closing) are sent again to another replica."""
    lb, replicas = cluster

    def roll() -> None:
        for r in replicas:
            assert r.stop() == 0, r.tail()
            r.start()
            r.wait_healthy()
            lb.wait_state(r.name, "UP")

    records, _, ended = _under_load(lb, roll, methods=("GET",))
    assert len(records) > 100, _describe(records)
    assert not _failures(records), _describe(records)
    late = [r for r in records if r.start > ended]
    assert {r.replica for r in late} == {r.name for r in replicas}, late[:5]


def test_kill_9_costs_at_most_the_requests_in_flight(
    cluster: tuple[rp.Haproxy, list[rp.Replica]],
) -> None:
    lb, replicas = cluster
    victim = replicas[1]
    marked_down: list[float] = []

    def kill() -> None:
        victim.kill()
        lb.wait_state(victim.name, "DOWN")
        marked_down.append(time.monotonic())

    try:
        records, killed, _ = _under_load(lb, kill, settle=1.5)
        bad = _failures(records)
        # Only POSTs HAProxy had sent to the victim can fail (a GET whose replica died is sent
        # again to another, HAProxy's retry-on): those in flight at the kill, and rarely one sent
        # while the process was dying, or on a kept-alive connection to it whose end HAProxy had
        # not yet seen. Nothing sent once HAProxy marked the replica down.
        assert all(r.method == "POST" for r in bad), _describe(records)
        assert all(r.start < marked_down[0] for r in bad), _describe(records)
        assert len(bad) <= CONNECTIONS  # each client connection has one request at a time
        # Then traffic moves on: everything after the failures answered, by the two survivors.
        after = [r for r in records if r.start > marked_down[0]]
        assert len(after) > 50, _describe(records)
        assert all(r.ok for r in after), _describe(after)
        assert {r.replica for r in after} == {r.name for r in replicas if r is not victim}
        assert all(r.ok for r in records if r.end <= killed), _describe(records)
    finally:
        victim.start()
        victim.wait_healthy()
        lb.wait_state(victim.name, "UP")


def test_config_change_rolled_out_with_sighup(
    cluster: tuple[rp.Haproxy, list[rp.Replica]], site: Path
) -> None:
    lb, replicas = cluster

    def rollout() -> None:
        for r in replicas:
            r.toml.write_text(_toml(site / "v2.wasm"))
            r.signal(signal.SIGHUP)
            rp.wait_until(f"{r.name} to serve v2", lambda r=r: r.get(ROUTE)[1] == b"v2\n", 15)

    try:
        records, _, ended = _under_load(lb, rollout)
        assert len(records) > 100, _describe(records)
        assert not _failures(records), _describe(records)
        assert {r.body for r in records} == {b"v1\n", b"v2\n"}
        late = [r for r in records if r.start > ended]
        assert late
        assert {r.body for r in late} == {b"v2\n"}
        assert {r.replica for r in late} == {r.name for r in replicas}
        assert all(r.proc is not None and r.proc.poll() is None for r in replicas)
    finally:
        for r in replicas:
            r.toml.write_text(_toml(site / "v1.wasm"))
            r.signal(signal.SIGHUP)
