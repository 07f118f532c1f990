"""The binding's lower-layer features, checked against the public behaviour they replace."""

from __future__ import annotations

import wasmtime

from wasmgate.engine import EngineSettings, get_engine
from wasmgate.engine.lowlevel import enable_pooling, set_stdin_bytes

ECHO = """(module
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start") (local $n i32)
    (block $done (loop $again
      (i32.store (i32.const 0) (i32.const 64))
      (i32.store (i32.const 4) (i32.const 4096))
      (drop (call $read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
      (local.set $n (i32.load (i32.const 8)))
      (br_if $done (i32.eqz (local.get $n)))
      (i32.store (i32.const 4) (local.get $n))
      (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
      (br $again)))))"""


def _run_echo(engine: wasmtime.Engine, stdin: bytes, tmp_path: object) -> bytes:
    import pathlib

    out = pathlib.Path(str(tmp_path)) / "out"
    store = wasmtime.Store(engine)
    store.set_epoch_deadline(1 << 40)
    cfg = wasmtime.WasiConfig()
    assert set_stdin_bytes(cfg, stdin)
    cfg.stdout_file = str(out)
    store.set_wasi(cfg)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    linker.instantiate(store, wasmtime.Module(engine, ECHO)).exports(store)["_start"](store)
    return out.read_bytes()


def test_stdin_bytes_round_trip(tmp_path: object) -> None:
    engine = get_engine().engine
    data = bytes(range(256)) * 100
    assert _run_echo(engine, data, tmp_path) == data
    assert _run_echo(engine, b"", tmp_path) == b""


def test_pooling_engine_runs_many_instances(tmp_path: object) -> None:
    handle = get_engine(EngineSettings(pooling=True))
    assert handle.pooling
    for i in range(50):
        assert _run_echo(handle.engine, str(i).encode(), tmp_path) == str(i).encode()


def test_enable_pooling_on_fresh_config() -> None:
    cfg = wasmtime.Config()
    assert enable_pooling(cfg)
    wasmtime.Engine(cfg)
