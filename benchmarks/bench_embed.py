"""Per-call cost of the embedding API against the raw wasmtime-py binding, side by side.

Cases (each timed through wasmgate and through the binding alone, on the same engine and guest):

- ``core add``: ``i32 add(i32, i32)`` of a core module. wasmgate is measured twice: with no limits,
  and with a per-call ``timeout`` (one extra FFI call per call to arm the deadline).
- ``component greet``: ``greet: func(name: string) -> string`` of ``tests/guests/comp_types.wat``.
- ``component 1000 records``: ``echo-people: func(people: list<person>) -> list<person>`` with
  1,000 records in and out; wasmgate takes dataclasses and returns its generated record class, the
  binding takes objects with attributes and returns its ``Record`` objects.

Method: every round times one batch of each variant, in an order rotated each round (so a noisy
neighbour hits every variant alike), after unrecorded warm-up rounds. Per-call time = batch time /
batch size; the report gives the median and p90 per variant and the ratio of medians
wasmgate / binding. Goals: at most ``CORE_GOAL`` for core calls and ``COMPONENT_GOAL`` for
component calls.

Usage: ``.venv/bin/python benchmarks/bench_embed.py [--rounds N] [--json]``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import wasmtime
from wasmtime import component as cm

import wasmgate
from wasmgate import Limits
from wasmgate.engine import get_engine
from wasmgate.engine.sandbox import new_store

REPO = Path(__file__).resolve().parent.parent
COMPONENT = REPO / "tests" / "guests" / "comp_types.wat"
ADD_WAT = """(module (func (export "add") (param i32 i32) (result i32)
  (i32.add (local.get 0) (local.get 1))))"""
CORE_GOAL = 1.10
COMPONENT_GOAL = 1.25
WARMUP_ROUNDS = 3


@dataclasses.dataclass
class Person:
    name: str
    age: int


@dataclasses.dataclass
class Variant:
    case: str
    label: str
    batch: int
    call: Callable[[], Any]


def variants() -> list[Variant]:
    handle = get_engine()
    engine = handle.engine

    # core module: the binding alone
    module = wasmtime.Module(engine, ADD_WAT)
    store = new_store(handle, Limits())
    raw_add = wasmtime.Linker(engine).instantiate(store, module).exports(store)["add"]
    assert isinstance(raw_add, wasmtime.Func)
    plain = wasmgate.instantiate(ADD_WAT).exports.add
    timed = wasmgate.instantiate(ADD_WAT, limits=Limits(timeout=60)).exports.add
    assert raw_add(store, 1, 2) == plain(1, 2) == timed(1, 2) == 3

    # component: the binding alone (WASI linked too, as wasmgate does)
    guest = wasmgate.load(COMPONENT)
    cstore = new_store(handle, Limits())
    cstore.set_wasi(wasmtime.WasiConfig())
    linker = cm.Linker(engine)
    linker.add_wasip2()
    raw_inst = linker.instantiate(cstore, guest.as_component())
    raw_greet = raw_inst.get_func(cstore, "greet")
    raw_people = raw_inst.get_func(cstore, "echo-people")
    assert raw_greet is not None
    assert raw_people is not None
    comp = wasmgate.instantiate_component(guest)
    greet = comp.exports.greet
    echo_people = comp.exports.echo_people
    people = [Person(f"person-{i}", i) for i in range(1000)]
    namespaces = [SimpleNamespace(name=p.name, age=p.age) for p in people]
    assert raw_greet(cstore, "world") == greet("world") == "Hello, world!"
    assert [r.age for r in raw_people(cstore, namespaces)] == [r.age for r in echo_people(people)]

    return [
        Variant("core add", "binding", 2000, lambda: raw_add(store, 1, 2)),
        Variant("core add", "wasmgate", 2000, lambda: plain(1, 2)),
        Variant("core add", "wasmgate+timeout", 2000, lambda: timed(1, 2)),
        Variant("component greet", "binding", 1000, lambda: raw_greet(cstore, "world")),
        Variant("component greet", "wasmgate", 1000, lambda: greet("world")),
        Variant("component 1000 records", "binding", 3, lambda: raw_people(cstore, namespaces)),
        Variant("component 1000 records", "wasmgate", 3, lambda: echo_people(people)),
    ]


def time_batch(v: Variant) -> float:
    call = v.call
    started = time.perf_counter()
    for _ in range(v.batch):
        call()
    return (time.perf_counter() - started) / v.batch


def measure(rounds: int) -> dict[str, list[float]]:
    vs = variants()
    samples: dict[str, list[float]] = {f"{v.case}|{v.label}": [] for v in vs}
    for r in range(WARMUP_ROUNDS + rounds):
        shift = r % len(vs)
        for v in vs[shift:] + vs[:shift]:
            per_call = time_batch(v)
            if r >= WARMUP_ROUNDS:
                samples[f"{v.case}|{v.label}"].append(per_call)
    return samples


def p90(xs: list[float]) -> float:
    return sorted(xs)[max(0, round(0.9 * len(xs)) - 1)]


def report(samples: dict[str, list[float]]) -> dict[str, Any]:
    medians = {k: statistics.median(v) for k, v in samples.items()}
    rows = [
        {"variant": k, "median_us": medians[k] * 1e6, "p90_us": p90(v) * 1e6}
        for k, v in samples.items()
    ]
    ratios = {
        "core add: wasmgate/binding": medians["core add|wasmgate"] / medians["core add|binding"],
        "core add: wasmgate+timeout/binding": (
            medians["core add|wasmgate+timeout"] / medians["core add|binding"]
        ),
        "component greet: wasmgate/binding": (
            medians["component greet|wasmgate"] / medians["component greet|binding"]
        ),
        "component 1000 records: wasmgate/binding": (
            medians["component 1000 records|wasmgate"] / medians["component 1000 records|binding"]
        ),
    }
    goals = {name: (CORE_GOAL if name.startswith("core") else COMPONENT_GOAL) for name in ratios}
    return {
        "rows": rows,
        "ratios": ratios,
        "goals": goals,
        "met": all(ratios[n] <= goals[n] for n in ratios),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = report(measure(args.rounds))
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{'variant':<42} {'median':>12} {'p90':>12}")
    for row in result["rows"]:
        print(f"{row['variant']:<42} {row['median_us']:>10.2f}us {row['p90_us']:>10.2f}us")
    print()
    for name, ratio in result["ratios"].items():
        goal = result["goals"][name]
        verdict = "ok" if ratio <= goal else "OVER"
        print(f"{name:<44} {ratio:6.3f}x  (goal <= {goal:.2f}x: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
