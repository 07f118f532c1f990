"""What a key-value get + set adds to a WAGI request, on each backend, in process.

Routes, all through ``ModuleHandler.handle`` (the gateway's per-request path without HTTP):
- ``hello``: examples/wagi/hello.c, the reference handler;
- ``kvtool, no calls``: examples/state/kvtool.c with an empty body (the same guest, no store
  call: the baseline the store calls are measured against);
- ``get+set sqlite``: kvtool running ``get`` then ``set`` of one 16-byte value on the SQLite
  ``default`` store (a file in a temporary state directory; WAL);
- ``get+set redis``: the same on a Redis store (a ``redis-server`` started on a free loopback
  port for the run, as the tests do; skipped when the binary is missing).

Method: interleaved rounds (the order rotates), ``--n`` requests per case per round, medians of
the per-round means. "added" is the case's median minus the ``kvtool, no calls`` median: the cost
of the two store calls through ``wasmgate_kv`` (guest -> host -> backend and back).

    .venv/bin/python benchmarks/bench_state.py [--rounds 5] [--n 300] [--json]
"""

from __future__ import annotations

import contextlib
import json
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(REPO / "tests"))

from _common import in_process_args, per_call  # noqa: E402
from guestbuild import build  # noqa: E402

from wasmgate.config import GatewayConfig  # noqa: E402
from wasmgate.engine.capture import default_pump  # noqa: E402
from wasmgate.gateway.state import load_state  # noqa: E402
from wasmgate.wagi.cgi import CgiRequest  # noqa: E402

VALUE = "0123456789abcdef"


@contextlib.contextmanager
def maybe_redis(folder: Path) -> Iterator[str | None]:
    if shutil.which("redis-server") is None:
        yield None
        return
    from state_support import redis_server

    with redis_server(folder) as server:
        yield server.url


def case(state: object, path: str, body: bytes) -> Callable[[], None]:
    table = state.table  # type: ignore[attr-defined]
    request = CgiRequest(
        method="POST", raw_path=path, query_string="", headers=((b"host", b"localhost"),)
    )
    match = table.match(path)
    handler = match.route.handler

    def run() -> None:
        result = handler.handle(request, body, match)
        assert result.status == 200, result.reason
        assert result.response is not None
        assert b"rc=0" in result.response.body or not body, result.response.body

    return run


def main() -> int:
    args = in_process_args(__doc__ or "")

    tmp = Path(tempfile.mkdtemp(prefix="wasmgate-bench-state-"))
    try:
        with maybe_redis(tmp) as redis_url:
            shutil.copy(build(REPO / "examples" / "wagi" / "hello.c"), tmp / "hello.wasm")
            shutil.copy(build(REPO / "examples" / "state" / "kvtool.c"), tmp / "kvtool.wasm")
            (tmp / "modules.toml").write_text(
                '[[module]]\nroute = "/hello"\nmodule = "hello.wasm"\n'
                '[[module]]\nroute = "/kv"\nmodule = "kvtool.wasm"\n'
                'key_value_stores = ["default", "cache"]\n'
            )
            rc = None
            if redis_url is not None:
                rc = tmp / "runtime-config.toml"
                rc.write_text(f'[key_value_store.cache]\ntype = "redis"\nurl = "{redis_url}"\n')
            config = GatewayConfig(
                modules_toml=tmp / "modules.toml",
                runtime_config_file=rc,
                state_dir=tmp / "state",
            )
            state = load_state(config, default_pump())
            cases = {
                "hello": case(state, "/hello", b""),
                "kvtool, no calls": case(state, "/kv", b""),
                "get+set sqlite": case(
                    state, "/kv", f"get default k 64\nset default k {VALUE}\n".encode()
                ),
            }
            if redis_url is not None:
                cases["get+set redis"] = case(
                    state, "/kv", f"get cache k 64\nset cache k {VALUE}\n".encode()
                )
            for fn in cases.values():  # warm-up (and the keys exist from here on)
                per_call(fn, max(10, args.n // 10))
            samples: dict[str, list[float]] = {name: [] for name in cases}
            names = list(cases)
            for r in range(args.rounds):
                order = names[r % len(names) :] + names[: r % len(names)]
                for name in order:
                    samples[name].append(per_call(cases[name], args.n))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    medians = {name: statistics.median(v) for name, v in samples.items()}
    base = medians["kvtool, no calls"]
    report = {
        name: {"us_per_request": round(m, 1), "added_us": round(m - base, 1)}
        for name, m in medians.items()
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"bench_state: {args.rounds} rounds x {args.n} requests, medians (µs per request)")
    print("| case | µs/request | added vs kvtool, no calls |")
    print("|---|---:|---:|")
    for name, row in report.items():
        added = "" if name in ("hello", "kvtool, no calls") else f"{row['added_us']:+.1f}"
        print(f"| {name} | {row['us_per_request']:.1f} | {added} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
