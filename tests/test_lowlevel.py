"""The binding's lower-layer features, checked against the public behaviour they replace."""

from __future__ import annotations

import pathlib

import pytest
import wasmtime

from wasihttp_support import require_native
from wasmgate.engine import EngineSettings, get_engine, lowlevel
from wasmgate.engine.lowlevel import (
    call_export,
    enable_pooling,
    instantiate,
    new_store,
    set_args_env,
    set_file_wasi,
    set_stdin_bytes,
)

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


ENV_DUMP = """(module
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $sizes (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $asizes (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $aget (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func $dump (param $count i32) (param $size i32)
    ;; strings are at 4096.., NUL-separated: print them all as one block
    (i32.store (i32.const 0) (i32.const 4096))
    (i32.store (i32.const 4) (local.get $size))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func (export "_start")
    (drop (call $asizes (i32.const 16) (i32.const 20)))
    (drop (call $aget (i32.const 1024) (i32.const 4096)))
    (call $dump (i32.load (i32.const 16)) (i32.load (i32.const 20)))
    (drop (call $sizes (i32.const 16) (i32.const 20)))
    (drop (call $get (i32.const 1024) (i32.const 4096)))
    (call $dump (i32.load (i32.const 16)) (i32.load (i32.const 20)))))"""


def _args_env_output(tmp_path: object, argv: list[str], env: dict[str, str], fast: bool) -> bytes:
    engine = get_engine().engine
    out = pathlib.Path(str(tmp_path)) / "out"
    store = wasmtime.Store(engine)
    store.set_epoch_deadline(1 << 40)
    cfg = wasmtime.WasiConfig()
    if fast:
        assert set_args_env(cfg, argv, env)
    else:
        cfg.argv = argv
        cfg.env = list(env.items())
    cfg.stdout_file = str(out)
    store.set_wasi(cfg)
    _wasi_linker(engine, store, ENV_DUMP)
    return out.read_bytes()


def _wasi_linker(engine: wasmtime.Engine, store: wasmtime.Store, wat: str) -> wasmtime.Linker:
    """A WASI linker, after running the command ``wat`` in ``store`` with it."""
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    assert call_export(store, linker.instantiate(store, wasmtime.Module(engine, wat)), "_start")
    return linker


@pytest.mark.parametrize(
    ("argv", "env"),
    [
        ([], {}),
        (["/x"], {}),
        ([], {"A": "1"}),
        (["/path", "a=1", "", "é"], {"HTTP_X": "ü ✓", "EMPTY": "", "K": "v=w"}),
        ([f"arg{i}" for i in range(50)], {f"V{i}": "x" * i for i in range(100)}),
    ],
)
def test_set_args_env_matches_public_setters(
    tmp_path: object, argv: list[str], env: dict[str, str]
) -> None:
    assert _args_env_output(tmp_path, argv, env, fast=True) == _args_env_output(
        tmp_path, argv, env, fast=False
    )


def test_set_args_env_refuses_nul() -> None:
    with pytest.raises(wasmtime.WasmtimeError, match="NUL"):
        set_args_env(wasmtime.WasiConfig(), ["a\0b"], {})
    with pytest.raises(wasmtime.WasmtimeError, match="NUL"):
        set_args_env(wasmtime.WasiConfig(), [], {"K": "v\0"})


CALLS = """(module
  (import "host" "boom" (func $boom))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (global $n (mut i32) (i32.const 0))
  (func (export "ok") (global.set $n (i32.const 1)))
  (func (export "trap") unreachable)
  (func (export "exit7") (call $exit (i32.const 7)))
  (func (export "host") (call $boom))
  (func (export "takes") (param i32))
  (memory (export "memory") 1))"""


class _Boom(Exception):
    pass


def _store_and_linker() -> tuple[wasmtime.Engine, wasmtime.Store, wasmtime.Linker]:
    """A store with empty WASI and a linker with WASI and ``host.boom`` (raises ``_Boom``)."""
    engine = get_engine().engine
    store = wasmtime.Store(engine)
    store.set_epoch_deadline(1 << 40)
    store.set_wasi(wasmtime.WasiConfig())
    linker = wasmtime.Linker(engine)
    linker.define_wasi()

    def boom() -> None:
        raise _Boom("from the host")

    linker.define_func("host", "boom", wasmtime.FuncType([], []), boom)
    return engine, store, linker


def _instance() -> tuple[wasmtime.Store, wasmtime.Instance]:
    engine, store, linker = _store_and_linker()
    return store, linker.instantiate(store, wasmtime.Module(engine, CALLS))


def _outcome(call: object) -> tuple[str, object]:
    try:
        call()  # type: ignore[operator]
    except wasmtime.ExitTrap as e:
        return ("exit", e.code)
    except wasmtime.Trap as e:
        return ("trap", e.trap_code)
    except _Boom as e:
        return ("host", str(e))
    except KeyError as e:
        return ("missing", str(e))
    except wasmtime.WasmtimeError:
        return ("error", None)
    return ("ok", None)


@pytest.mark.parametrize("name", ["ok", "trap", "exit7", "host", "takes", "memory", "nothing"])
def test_call_export_raises_as_the_public_call(name: str) -> None:
    store, instance = _instance()
    fast = _outcome(lambda: call_export(store, instance, name))
    store, instance = _instance()

    def public() -> None:
        func = instance.exports(store)[name]
        if not isinstance(func, wasmtime.Func):
            raise KeyError(name)
        func(store)

    assert fast == _outcome(public)


# Start functions that end each way a call can: returning, trapping, exiting, a host function
# raising. (The start function's import of WASI's proc_exit is what a C guest's _start does.)
STARTS = {
    "ok": "(func $start)",
    "trap": "(func $start unreachable)",
    "exit3": "(func $start (call $exit (i32.const 3)))",
    "exit0": "(func $start (call $exit (i32.const 0)))",
    "host": "(func $start (call $boom))",
}


def _pre(start: str) -> tuple[wasmtime.Store, wasmtime.InstancePre]:
    engine, store, linker = _store_and_linker()
    wat = f"""(module
      (import "host" "boom" (func $boom))
      (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
      {STARTS[start]}
      (start $start)
      (func (export "ok")))"""
    return store, linker.instantiate_pre(wasmtime.Module(engine, wat))


@pytest.mark.parametrize("start", sorted(STARTS))
def test_instantiate_raises_as_the_public_instantiate(start: str) -> None:
    store, pre = _pre(start)
    fast = _outcome(lambda: instantiate(store, pre))
    store, pre = _pre(start)
    assert fast == _outcome(lambda: pre.instantiate(store))
    if fast == ("ok", None):
        instance = instantiate(store, pre)
        assert isinstance(instance, wasmtime.Instance)
        assert call_export(store, instance, "ok")


# Memory limited to two pages: growing by one works, by a second one is refused (-1); a module
# that starts with three pages cannot be instantiated at all. "spin" loops until interrupted.
LIMITED = """(module
  (memory (export "memory") {pages})
  (func (export "grow") (result i32) (memory.grow (i32.const 1)))
  (func (export "spin") (loop $l (br $l))))"""


def _limited_outcome(store: wasmtime.Store, pages: int, calls: list[str]) -> list[object]:
    engine = get_engine().engine
    try:
        instance = wasmtime.Linker(engine).instantiate(
            store, wasmtime.Module(engine, LIMITED.format(pages=pages))
        )
    except wasmtime.WasmtimeError:
        return ["refused"]
    results: list[object] = []
    for name in calls:
        func = instance.exports(store)[name]
        assert isinstance(func, wasmtime.Func)
        results.append(_outcome(lambda f=func: f(store)) if name == "spin" else func(store))
    return results


@pytest.mark.parametrize(
    ("ticks", "memory", "pages", "calls"),
    [
        (1 << 40, 2 * 65536, 1, ["grow", "grow"]),
        (1 << 40, None, 1, ["grow", "grow"]),
        (1 << 40, 2 * 65536, 3, ["grow"]),
        (0, None, 1, ["spin"]),
    ],
)
def test_new_store_matches_the_public_store(
    ticks: int, memory: int | None, pages: int, calls: list[str]
) -> None:
    engine = get_engine().engine  # epoch interruption on: a deadline of 0 stops the first loop
    fast = new_store(engine, ticks, memory)
    assert isinstance(fast, wasmtime.Store)
    public = wasmtime.Store(engine)
    public.set_epoch_deadline(ticks)
    if memory is not None:
        public.set_limits(memory_size=memory)
    expected = _limited_outcome(public, pages, calls)
    assert _limited_outcome(fast, pages, calls) == expected
    assert expected != ["refused"] or pages == 3
    fast.close()
    fast.close()  # closed like any store: twice is harmless


@pytest.fixture(params=["c", "python"])
def wasi_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """``set_file_wasi`` made by the ``_crossing`` extension or by its ctypes path."""
    if request.param == "c":
        require_native()
    else:
        monkeypatch.setattr(lowlevel, "native", lambda: None)
    return str(request.param)


def _file_wasi_store(
    engine: wasmtime.Engine,
    argv: list[str] | None,
    env: dict[str, str] | None,
    stdin: bytes,
    out: pathlib.Path,
    err: pathlib.Path,
    fast: bool,
) -> wasmtime.Store:
    """A store whose WASI has ``argv``, ``env``, ``stdin`` and files ``out`` and ``err`` for
    stdout and stderr, configured by ``set_file_wasi`` or by the public API."""
    store = wasmtime.Store(engine)
    store.set_epoch_deadline(1 << 40)
    if fast:
        assert set_file_wasi(store, argv, env, stdin, bytes(out), bytes(err))
        return store
    cfg = wasmtime.WasiConfig()
    if argv is not None:
        cfg.argv = argv
    if env is not None:
        cfg.env = list(env.items())
    assert set_stdin_bytes(cfg, stdin)
    cfg.stdout_file = str(out)
    cfg.stderr_file = str(err)
    store.set_wasi(cfg)
    return store


def _file_wasi_output(
    tmp_path: object,
    argv: list[str] | None,
    env: dict[str, str] | None,
    stdin: bytes,
    fast: bool,
) -> tuple[bytes, bytes]:
    """(stdout, stderr) of a guest that dumps its argv and environment to stdout and copies its
    stdin to stderr, configured by ``set_file_wasi`` or by the public API."""
    engine = get_engine().engine
    out = pathlib.Path(str(tmp_path)) / "out"
    err = pathlib.Path(str(tmp_path)) / "err"
    store = _file_wasi_store(engine, argv, env, stdin, out, err, fast)
    linker = _wasi_linker(engine, store, ENV_DUMP)
    copy = ECHO.replace(
        "(i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)",
        "(i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)",
    )
    assert copy != ECHO
    echo = linker.instantiate(store, wasmtime.Module(engine, copy))
    assert call_export(store, echo, "_start")
    return out.read_bytes(), err.read_bytes()


@pytest.mark.parametrize(
    ("argv", "env", "stdin"),
    [
        (None, None, b""),
        (["/route", "a=1"], None, b"body"),
        (None, {"K": "v", "HTTP_X": "ü ✓"}, bytes(range(256)) * 40),
        (["/x", ""], {"EMPTY": ""}, b"\0\n"),
    ],
)
def test_set_file_wasi_matches_the_public_configuration(
    tmp_path: object,
    argv: list[str] | None,
    env: dict[str, str] | None,
    stdin: bytes,
    wasi_path: str,
) -> None:
    fast = _file_wasi_output(tmp_path, argv, env, stdin, fast=True)
    assert fast == _file_wasi_output(tmp_path, argv, env, stdin, fast=False)
    assert fast[1] == stdin


# Reads stdin twice and writes each read's errno and byte count (little-endian i32s) to stdout.
STDIN_PROBE = """(module
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 100))
    (i32.store (i32.const 4) (i32.const 64))
    (i32.store (i32.const 200)
      (call $read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 16)))
    (i32.store (i32.const 204) (i32.load (i32.const 16)))
    (i32.store (i32.const 208)
      (call $read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 16)))
    (i32.store (i32.const 212) (i32.load (i32.const 16)))
    (i32.store (i32.const 300) (i32.const 200))
    (i32.store (i32.const 304) (i32.const 16))
    (drop (call $write (i32.const 1) (i32.const 300) (i32.const 1) (i32.const 308)))))
"""


@pytest.mark.parametrize("stdin", [b"", b"abc"])
def test_an_empty_request_body_reads_as_end_of_file_in_both_configurations(
    tmp_path: object, stdin: bytes, wasi_path: str
) -> None:
    # A request without a body gives WASI no stdin bytes at all (a call fewer): the guest must
    # see exactly what an empty in-memory stdin gives, end of file and no error, every read.
    import struct

    engine = get_engine().engine
    outputs = []
    for fast in (True, False):
        out = pathlib.Path(str(tmp_path)) / f"out-{fast}"
        err = pathlib.Path(str(tmp_path)) / f"err-{fast}"
        store = _file_wasi_store(engine, None, None, stdin, out, err, fast)
        linker = wasmtime.Linker(engine)
        linker.define_wasi()
        probe = linker.instantiate(store, wasmtime.Module(engine, STDIN_PROBE))
        assert call_export(store, probe, "_start")
        outputs.append(struct.unpack("<4i", out.read_bytes()))
    assert outputs[0] == outputs[1] == (0, len(stdin), 0, 0)


def test_set_file_wasi_refuses_what_the_public_setters_refuse(
    tmp_path: object, wasi_path: str
) -> None:
    store = wasmtime.Store(get_engine().engine)
    missing = bytes(pathlib.Path(str(tmp_path)) / "no" / "such" / "dir" / "out")
    ok = bytes(pathlib.Path(str(tmp_path)) / "ok")
    with pytest.raises(wasmtime.WasmtimeError, match="stdout"):
        set_file_wasi(store, None, None, b"", missing, ok)
    with pytest.raises(wasmtime.WasmtimeError, match="stderr"):
        set_file_wasi(store, None, None, b"", ok, missing)
    with pytest.raises(wasmtime.WasmtimeError, match="NUL"):
        set_file_wasi(store, ["a\0b"], None, b"", ok, ok)
    with pytest.raises(wasmtime.WasmtimeError, match="NUL"):
        set_file_wasi(store, None, {"K": "v\0"}, b"", ok, ok)
    with pytest.raises(wasmtime.WasmtimeError, match="NUL"):
        set_file_wasi(store, None, {"K\0": "v"}, b"", ok, ok)
    with pytest.raises(wasmtime.WasmtimeError, match="NUL"):
        set_file_wasi(store, None, None, b"", ok + b"\0x", ok)
    # and the store is still usable: nothing was given to it
    assert set_file_wasi(store, ["a"], {"K": "v"}, b"in", ok, ok)


def test_quick_calls_hold_the_gil_and_guest_calls_release_it() -> None:
    import ctypes

    from wasmtime import _bindings

    from wasmgate.engine.lowlevel import QUICK_CALLS, hold_gil_in_quick_calls

    get_engine()  # switches them, once per process
    held = hold_gil_in_quick_calls()
    assert held == [n for n in QUICK_CALLS if hasattr(_bindings, "_" + n)]
    assert "wasmtime_store_new" in held
    for name in held:
        assert getattr(_bindings, "_" + name)._flags_ & ctypes._FUNCFLAG_PYTHONAPI, name
    for name in ("wasmtime_func_call", "wasmtime_instance_pre_instantiate", "wasmtime_module_new"):
        assert name not in held
        assert not getattr(_bindings, "_" + name)._flags_ & ctypes._FUNCFLAG_PYTHONAPI, name


def test_owned_host_values_are_kept_only_for_low_reps() -> None:
    """The kept host resource values read back the (rep, type) they were made for; low reps are
    made once, high ones afresh each time (the caller deletes those)."""
    from wasmtime import _ffi

    from wasmgate.engine.lowlevel import _KEPT_HOSTS, _owned_host

    low = _owned_host(3, 7)
    assert _owned_host(3, 7) is low
    assert _owned_host(3, 8) is not low
    for rep, type_id in ((3, 7), (3, 8), (_KEPT_HOSTS + 5, 7)):
        host = _owned_host(rep, type_id)
        assert _ffi.wasmtime_component_resource_host_rep(host) == rep
        assert _ffi.wasmtime_component_resource_host_type(host) == type_id
        assert _ffi.wasmtime_component_resource_host_owned(host)
        if rep >= _KEPT_HOSTS:
            _ffi.wasmtime_component_resource_host_delete(host)
    high = _owned_host(_KEPT_HOSTS + 5, 7)
    again = _owned_host(_KEPT_HOSTS + 5, 7)
    assert again is not high
    _ffi.wasmtime_component_resource_host_delete(high)
    _ffi.wasmtime_component_resource_host_delete(again)
