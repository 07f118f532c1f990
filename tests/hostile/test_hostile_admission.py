"""Per-route admission (issue 12, item 6): a route flooded with requests answers 503 for itself,
and the other routes keep their share of the admission queue (a quarter of ``--threads`` +
``--queue``), as they keep their share of the guest threads."""

from __future__ import annotations

import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway_support import Server, running_server

from .hostile_support import get, port_of, wait_for_log


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    hostile_guest: Callable[[str], Path],
    cache_dir: Path,
) -> Iterator[Server]:
    d = tmp_path_factory.mktemp("admission")
    shutil.copy(hostile_guest("hog"), d / "hog.wasm")
    (d / "modules.toml").write_text(
        '[[module]]\nroute = "/slow"\nmodule = "hog.wasm"\n\n'
        '[[module]]\nroute = "/quick"\nmodule = "hog.wasm"\n'
    )
    # 8 slots: /slow may hold 6, 2 stay for the other routes.
    args = ("--threads", "2", "--queue", "6")
    with running_server(d / "modules.toml", *args, env={"WASMGATE_CACHE_DIR": str(cache_dir)}) as s:
        yield s


def test_a_flooded_route_does_not_lock_the_others_out(server: Server) -> None:
    port = port_of(server)
    statuses: Counter[int] = Counter()
    lock = threading.Lock()

    def flood() -> None:
        status = get(port, "/slow?sleep&1000", timeout=15).status
        with lock:
            statuses[status] += 1

    threads = [threading.Thread(target=flood) for _ in range(12)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)  # the flood is in: 6 admitted, 6 refused
        quick = [get(port, "/quick?ok", timeout=10).status for _ in range(5)]
    finally:
        for t in threads:
            t.join()
    assert quick == [200] * 5
    assert statuses[503] == 6, statuses
    assert statuses[200] == 6, statuses
    wait_for_log(server, r'"route":"/slow","status":503,"cause":"route-saturated"')
