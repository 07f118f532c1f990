"""Core modules embedded in a Python program: instantiate once, call exports like functions.

Rules:
- ``instantiate`` loads through the shared engine and artifact cache, checks every import up front
  (``linking``), and instantiates through the engine's one entry (``Program``): one store per
  instance, WASI granting exactly ``capabilities``, the same limits and outcomes as every face.
  A reactor's ``_initialize`` runs once, at instantiation.
- State lives as long as the ``Instance``: memory, globals and the guest's heap persist between
  calls. Limits: see ``guard`` (memory for the instance's life; timeout and fuel per call).
- Exports are looked up once and kept as ``ExportFunction`` callables, so a call costs the binding's
  own call plus an arity check, the per-call limits and one ``try``. Results come back as Python
  numbers: ``None`` for no result, a value for one, a tuple for several.
- Arguments: ``int`` for i32/i64, in the signed or unsigned range of their width (results come
  back signed, as wasm defines them); ``float`` or ``int`` for f32/f64.
- Errors: wrong arguments raise ``TypeError`` before any wasm runs; guest failures raise
  ``GuestTrap``, ``LimitExceeded`` or ``GuestExit``; host-function exceptions propagate unchanged.
- An instance (its store) is for one thread at a time; make one instance per thread.

Strings and bytes (``call_str``/``call_bytes``) follow one convention, chosen to match what the
canonical ABI and wit-bindgen do for core code:
- The guest exports an allocator: ``cabi_realloc(old_ptr, old_size, align, new_size) -> ptr``
  (preferred) or ``alloc(size) -> ptr``.
- Each ``str`` argument is encoded as UTF-8 (``bytes`` as is), copied into memory the allocator
  returned, and passed as two ``i32`` parameters ``(ptr, len)``. The guest owns that memory from
  then on and frees it when it likes. Numbers are passed through as they are.
- The export returns one ``i64``: ``(ptr << 32) | len`` of the result bytes. The host copies them
  out (bounds-checked), then calls ``cabi_post_<export>(packed)`` if the guest exports it, so the
  guest can free the result. A string result must be valid UTF-8.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import wasmtime

from ..capabilities import Capabilities
from ..engine import CacheConfig, EngineSettings, LoadedGuest, Program, core_type
from ..errors import LinkError, UsageError, given
from ..limits import Limits
from .call_limits import CallGuard
from .hostfuncs import HostFunctions, define_core_function
from .linking import check_core_imports
from .memory import GuestMemory, GuestMemoryError
from .owner import StoreOwner
from .source import Source, resolve

__all__ = ["ExportFunction", "Exports", "Instance", "instantiate"]

_MASK32 = 0xFFFFFFFF
_MASK64 = 0xFFFFFFFFFFFFFFFF
# Accepted integer ranges: signed or unsigned spellings of the same bits. Float parameters get an
# empty range, so every value for them takes the checked path, where ints become floats.
_ARG_SPECS: dict[str, tuple[int, int]] = {
    "i32": (-(2**31), 2**32 - 1),
    "i64": (-(2**63), 2**64 - 1),
    "f32": (1, 0),
    "f64": (1, 0),
}


class ExportFunction:
    """One exported function of an instance, callable with Python numbers."""

    __slots__ = ("_func", "_guard", "_nparams", "_specs", "_store", "name", "type")

    def __init__(
        self, name: str, func: wasmtime.Func, store: wasmtime.Store, guard: CallGuard
    ) -> None:
        self.name = name
        self.type = func.type(store)
        self._func = func
        self._store = store
        self._guard = guard
        self._specs = tuple(_ARG_SPECS[str(p)] for p in self.type.params)
        self._nparams = len(self._specs)

    def __repr__(self) -> str:
        return f"<ExportFunction {self.name}: {core_type(self.type)}>"

    def __call__(self, *args: Any) -> Any:
        if len(args) != self._nparams:
            self._no_strings(args)
            raise TypeError(
                f"{self.name}() takes {self._nparams} argument(s) ({core_type(self.type)}), "
                f"but {given(len(args))}"
            )
        for value, (lo, hi) in zip(args, self._specs, strict=True):
            if type(value) is not int or not lo <= value <= hi:
                args = self._convert(args)
                break
        guard = self._guard
        guard.arm()
        try:
            result = self._func(self._store, *args)
        except (wasmtime.WasmtimeError, wasmtime.Trap) as err:
            failure = guard.failure(err)
        except BaseException:
            guard.pending = None  # wasmtime re-raised the host function's own exception
            raise
        else:
            guard.finished()
            return tuple(result) if type(result) is list else result
        if failure is None:
            return None
        raise failure

    def _no_strings(self, args: tuple[Any, ...]) -> None:
        if any(isinstance(a, str | bytes | bytearray | memoryview) for a in args):
            raise TypeError(
                f"{self.name}() takes numbers ({core_type(self.type)}); pass strings and bytes "
                f"with call_str({self.name!r}, ...) or call_bytes({self.name!r}, ...), which "
                "copy them into guest memory as (ptr, len)"
            )

    def _convert(self, args: tuple[Any, ...]) -> tuple[Any, ...]:
        """Arguments checked one by one (the slow path: floats, int subclasses, errors)."""
        out = []
        for i, (value, (lo, hi)) in enumerate(zip(args, self._specs, strict=True)):
            kind = str(self.type.params[i])
            if isinstance(value, bool) or not isinstance(value, int | float):
                hint = ""
                if isinstance(value, str | bytes | bytearray | memoryview):
                    hint = f" (pass strings and bytes with call_str({self.name!r}, ...))"
                raise TypeError(
                    f"{self.name}: argument {i}: expected {kind}, got {_got(value)}{hint}"
                )
            if kind in ("f32", "f64"):
                out.append(float(value))
            elif isinstance(value, float) or not lo <= value <= hi:
                detail = f"{value} (out of range)" if isinstance(value, int) else "float"
                raise TypeError(f"{self.name}: argument {i}: expected {kind}, got {detail}")
            else:
                out.append(int(value))
        return tuple(out)


def _got(value: Any) -> str:
    return type(value).__name__


class Exports:
    """``inst.exports.add(1, 2)`` or ``inst.exports["add"](1, 2)``: the instance's functions."""

    _instance: Instance

    def __init__(self, instance: Instance) -> None:
        object.__setattr__(self, "_instance", instance)

    def __getattr__(self, name: str) -> ExportFunction:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            func = self._instance.func(name)
        except LinkError as e:
            raise AttributeError(str(e)) from None
        object.__setattr__(self, name, func)
        return func

    def __getitem__(self, name: str) -> ExportFunction:
        return self._instance.func(name)

    def __contains__(self, name: object) -> bool:
        return name in self._instance.export_names()

    def __iter__(self) -> Iterator[str]:
        return iter(self._instance.export_names())

    def __dir__(self) -> list[str]:
        return [n for n in self._instance.export_names() if n.isidentifier()]


class Instance(StoreOwner):
    """A live core-module instance: one store, its exports, its memory and its limits."""

    def __init__(
        self,
        guest: LoadedGuest,
        store: wasmtime.Store,
        raw: wasmtime.Instance,
        guard: CallGuard,
    ) -> None:
        self.guest = guest
        self.name = guest.name
        self.store = store
        self.raw = raw
        self._guard = guard
        self._closed = False
        self._items = raw.exports(store)
        self._funcs: dict[str, ExportFunction] = {}
        self._memory: GuestMemory | None = None
        self._alloc: ExportFunction | None = None
        self.exports = Exports(self)
        mem = self._items.get("memory")
        if isinstance(mem, wasmtime.Memory):
            self._memory = GuestMemory(mem, store)
            guard.set_memory_probe(lambda: mem.data_len(store))

    def export_names(self) -> list[str]:
        return [e.name for e in self.guest.core().exports if isinstance(e.type, wasmtime.FuncType)]

    def func(self, name: str) -> ExportFunction:
        """The exported function ``name`` (looked up once, then cached)."""
        func = self._funcs.get(name)
        if func is not None:
            return func
        item = self._items.get(name)
        if not isinstance(item, wasmtime.Func):
            kind = "is not a function" if item is not None else "does not exist"
            names = ", ".join(self.export_names()) or "none"
            raise LinkError(f"{self.name}: export {name!r} {kind} (exported functions: {names})")
        func = self._funcs[name] = ExportFunction(name, item, self.store, self._guard)
        return func

    def call(self, name: str, *args: Any) -> Any:
        """Call export ``name`` with numbers: ``inst.call("add", 1, 2)``."""
        return self.func(name)(*args)

    @property
    def memory(self) -> GuestMemory:
        """The guest's exported ``memory``."""
        if self._memory is None:
            raise GuestMemoryError(f"{self.name}: exports no memory named 'memory'")
        return self._memory

    @property
    def fuel_consumed(self) -> int | None:
        """Fuel used by the most recent call (None without a fuel limit)."""
        return self._guard.fuel_consumed()

    # -- strings and bytes (see the module docstring for the convention) --

    def alloc(self, size: int) -> int:
        """Guest memory of ``size`` bytes from the guest's own allocator."""
        if self._alloc is None:
            if "cabi_realloc" in self._items:
                realloc = self.func("cabi_realloc")
                self._alloc = realloc
            elif "alloc" in self._items:
                self._alloc = self.func("alloc")
            else:
                raise LinkError(
                    f"{self.name}: passing strings or bytes needs an exported allocator "
                    "(cabi_realloc(old_ptr, old_size, align, new_size) or alloc(size))"
                )
        if self._alloc.name == "cabi_realloc":
            ptr = self._alloc(0, 0, 1, size)
        else:
            ptr = self._alloc(size)
        return int(ptr) & _MASK32

    def copy_in(self, data: str | bytes | bytearray | memoryview) -> tuple[int, int]:
        """Copy text (as UTF-8) or bytes into fresh guest memory; returns ``(ptr, len)``."""
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        ptr = self.alloc(len(raw))
        self.memory.write(ptr, raw)
        return ptr, len(raw)

    def call_bytes(self, name: str, *args: Any) -> bytes:
        """Call ``name`` with str/bytes/number arguments; the packed i64 result read as bytes."""
        func = self.func(name)
        results = [str(r) for r in func.type.results]
        if results != ["i64"]:
            raise UsageError(
                f"{self.name}: {name} returns {core_type(func.type)}; strings and bytes come "
                "back as one i64 (ptr << 32 | len)"
            )
        flat: list[Any] = []
        for arg in args:
            if isinstance(arg, str | bytes | bytearray | memoryview):
                flat.extend(self.copy_in(arg))
            else:
                flat.append(arg)
        packed = func(*flat)
        value = int(packed) & _MASK64
        ptr, length = value >> 32, value & _MASK32
        data = self.memory.read(ptr, length)
        if "cabi_post_" + name in self._items:
            self.func("cabi_post_" + name)(packed)
        return data

    def call_str(self, name: str, *args: Any) -> str:
        """Like ``call_bytes``, decoding the result as UTF-8: ``inst.call_str("greet", "Ada")``."""
        data = self.call_bytes(name, *args)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise GuestMemoryError(
                f"{self.name}: {name} returned invalid UTF-8 (byte {e.start})"
            ) from None


def instantiate(
    source: Source,
    *,
    imports: HostFunctions | None = None,
    capabilities: Capabilities | None = None,
    limits: Limits = Limits(),
    wasi: bool = True,
    settings: EngineSettings | None = None,
    cache: CacheConfig = CacheConfig(),
    allow_precompiled: bool = False,
) -> Instance:
    """Load (or reuse) a core module and instantiate it in a sandbox.

    ``source`` is a path, wasm bytes, WAT text (a ``str`` starting with ``(``) or a
    ``LoadedGuest``. ``imports`` provides host functions; with ``wasi`` (the default) WASI
    preview1 is linked, granting exactly ``capabilities``.
    """
    guest = resolve(source, limits, settings, cache, allow_precompiled)
    if guest.kind == "component":
        raise UsageError(f"{guest.name}: is a component; use wasmgate.instantiate_component")
    module = guest.core()
    needed = check_core_imports(guest.name, module, imports, wasi=wasi)
    host_calls = wasi and any(
        i.module == "wasi_snapshot_preview1" and i.name == "poll_oneoff" for i in module.imports
    )
    guard = CallGuard(guest.engine, limits, host_calls=host_calls)

    def define(linker: wasmtime.Linker) -> None:
        for hf, sig in needed:
            define_core_function(linker, hf, sig, guard)

    program = Program(guest, define=define)
    store, raw = guard.start(program, capabilities or Capabilities())
    assert isinstance(raw, wasmtime.Instance)
    inst = Instance(guest, store, raw, guard)
    inst.capabilities = capabilities or Capabilities()
    if "_initialize" in inst.export_names():
        inst.func("_initialize")()
    return inst
