"""Host functions: plain Python callables offered to guests as imports.

Rules:
- A ``HostFunctions`` registry maps (namespace, name) to a callable. The namespace defaults to the
  registry's ``module`` (``env``, where C toolchains put undefined functions); the name defaults to
  the function's ``__name__``. Registering the same pair twice is an error, never a silent override.
- Core modules: the wasm signature comes from the type hints (``coretypes``), an explicit
  ``params=``/``results=`` spec, or, with no annotations at all, the guest's own declaration.
- Components: the signature comes from the component's WIT import, so hints are not needed and
  values arrive converted (records as dataclasses, ``result`` errors by raising
  ``ComponentError``...). A function in the registry's default namespace provides a root-level
  function import of the same name; a WIT interface (``my:pkg/iface``) is a namespace. WIT names
  are kebab-case and may be registered in snake_case (``print_int`` provides ``print-int``).
- An exception raised by a host function unwinds the guest and reaches whoever called into wasm
  as the same object (same type, message and traceback): the wrapper stores it in the calling
  instance's ``CallGuard.pending`` before wasmtime turns it into a trap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, overload

import wasmtime

from ..errors import UsageError
from .call_limits import CallGuard
from .coretypes import TEXT_KINDS, CoreSignature, signature_of
from .memory import GuestMemory, GuestMemoryError

__all__ = ["HostFunction", "HostFunctions", "define_core_function"]

F = Callable[..., Any]


@dataclass(frozen=True, slots=True)
class HostFunction:
    """One registered host function and its (optional) explicit core signature."""

    module: str
    name: str
    fn: F
    params: tuple[Any, ...] | None = None
    results: tuple[Any, ...] | None = None

    @property
    def label(self) -> str:
        return f"host function {self.module}::{self.name}"

    def core_signature(self, declared: wasmtime.FuncType | None = None) -> CoreSignature:
        return signature_of(
            self.fn, self.label, params=self.params, results=self.results, declared=declared
        )


class HostFunctions:
    """A set of host functions to link into guests (``imports=`` of ``instantiate``)."""

    def __init__(self, module: str = "env") -> None:
        self.module = module
        self._funcs: dict[tuple[str, str], HostFunction] = {}

    @overload
    def function(self, module_or_fn: F, /) -> F: ...

    @overload
    def function(
        self,
        module_or_fn: str | None = None,
        name: str | None = None,
        /,
        *,
        params: Sequence[Any] | None = None,
        results: Sequence[Any] | None = None,
    ) -> Callable[[F], F]: ...

    def function(
        self,
        module_or_fn: F | str | None = None,
        name: str | None = None,
        /,
        *,
        params: Sequence[Any] | None = None,
        results: Sequence[Any] | None = None,
    ) -> F | Callable[[F], F]:
        """Decorator: ``@host.function``, ``@host.function("env", "print_int")``,
        ``@host.function("my:pkg/logger")`` or ``@host.function(params=[i64], results=[])``.
        Returns the function unchanged."""
        if callable(module_or_fn):
            self.add(self.module, module_or_fn.__name__, module_or_fn)
            return module_or_fn
        module = module_or_fn if module_or_fn is not None else self.module

        def register(fn: F) -> F:
            self.add(module, name or fn.__name__, fn, params=params, results=results)
            return fn

        return register

    def add(
        self,
        module: str,
        name: str,
        fn: F,
        *,
        params: Sequence[Any] | None = None,
        results: Sequence[Any] | None = None,
    ) -> None:
        """Register ``fn`` as ``module::name`` (the non-decorator form)."""
        if not callable(fn):
            raise UsageError(f"host function {module}::{name} is not callable")
        key = (module, name)
        if key in self._funcs:
            raise UsageError(f"host function {module}::{name} is already defined")
        self._funcs[key] = HostFunction(
            module,
            name,
            fn,
            tuple(params) if params is not None else None,
            tuple(results) if results is not None else None,
        )

    def get(self, module: str, name: str) -> HostFunction | None:
        """The function for ``module::name``; a kebab-case name also finds its snake_case twin."""
        found = self._funcs.get((module, name))
        if found is None and "-" in name:
            found = self._funcs.get((module, name.replace("-", "_")))
        return found

    def namespaces(self) -> set[str]:
        return {m for m, _ in self._funcs}

    def __iter__(self) -> Iterator[HostFunction]:
        return iter(self._funcs.values())

    def __len__(self) -> int:
        return len(self._funcs)


def define_core_function(
    linker: wasmtime.Linker, hf: HostFunction, sig: CoreSignature, guard: CallGuard
) -> None:
    """Define ``hf`` on ``linker`` so its exceptions are parked in ``guard`` before unwinding.

    An ``int`` returned for a float result is converted (a fine f64 to a human, not to the
    binding); everything else is passed through to wasmtime's own checks. ``str``/``bytes``
    parameters and results move through the caller's memory (see ``coretypes.CoreSignature``).
    """
    fn = hf.fn
    first: Callable[[wasmtime.Caller], Any] | None = None
    if sig.inject == "memory":
        first = GuestMemory.of_caller
    elif sig.inject == "caller":
        first = _same
    coerce = _float_coercer(sig.results)
    text = _TextMover(hf.label, sig) if sig.moves_text else None

    def host(*args: Any) -> Any:
        try:
            if text is not None:
                caller, raw = args[0], args[1:]
                values = text.lift(caller, raw)
                if first is not None:
                    values = (first(caller), *values)
                return text.lower(caller, fn(*values))
            if first is not None:
                args = (first(args[0]), *args[1:])
            result = fn(*args)
            return result if coerce is None else coerce(result)
        except BaseException as e:
            guard.pending = e
            raise

    access_caller = sig.inject is not None or text is not None
    linker.define_func(hf.module, hf.name, sig.func_type(), host, access_caller=access_caller)


class _TextMover:
    """Moves ``str``/``bytes`` between a host function and its caller's memory: arguments read
    from ``(ptr, len)`` (UTF-8 for ``str``), a result copied into memory the guest's allocator
    returned (``cabi_realloc`` or ``alloc``, as the string convention of exports) and returned as
    ``ptr << 32 | len``. The guest owns that memory from then on."""

    __slots__ = ("kinds", "label", "result_kind")

    def __init__(self, label: str, sig: CoreSignature) -> None:
        self.label = label
        self.kinds = sig.kinds
        self.result_kind = sig.result_kind

    def _memory(self, caller: wasmtime.Caller) -> wasmtime.Memory:
        memory = caller.get("memory")
        if not isinstance(memory, wasmtime.Memory):
            raise GuestMemoryError(f"{self.label}: moving str/bytes needs an exported memory")
        return memory

    def lift(self, caller: wasmtime.Caller, raw: tuple[Any, ...]) -> tuple[Any, ...]:
        values: list[Any] = []
        i = 0
        for kind in self.kinds:
            if kind in TEXT_KINDS:
                ptr, length = raw[i] & 0xFFFFFFFF, raw[i + 1] & 0xFFFFFFFF
                memory = self._memory(caller)
                if ptr + length > memory.data_len(caller):
                    raise GuestMemoryError(
                        f"{self.label}: ({ptr}, {length}) is outside the guest's memory"
                    )
                data = bytes(memory.read(caller, ptr, ptr + length))
                values.append(data.decode("utf-8") if kind == "str" else data)
                i += 2
            else:
                values.append(raw[i])
                i += 1
        return tuple(values)

    def lower(self, caller: wasmtime.Caller, result: Any) -> Any:
        if self.result_kind is None:
            return result
        if self.result_kind == "str":
            if not isinstance(result, str):
                raise TypeError(f"{self.label}: returned {type(result).__name__}, not str")
            data = result.encode("utf-8")
        else:
            if not isinstance(result, bytes | bytearray | memoryview):
                raise TypeError(f"{self.label}: returned {type(result).__name__}, not bytes")
            data = bytes(result)
        realloc = caller.get("cabi_realloc")
        if isinstance(realloc, wasmtime.Func):
            ptr = realloc(caller, 0, 0, 1, len(data))
        else:
            alloc = caller.get("alloc")
            if not isinstance(alloc, wasmtime.Func):
                raise GuestMemoryError(
                    f"{self.label}: returning {self.result_kind} needs an exported allocator "
                    "(cabi_realloc(old_ptr, old_size, align, new_size) or alloc(size))"
                )
            ptr = alloc(caller, len(data))
        ptr = int(ptr) & 0xFFFFFFFF
        self._memory(caller).write(caller, data, ptr)
        packed = (ptr << 32) | len(data)
        return packed - (1 << 64) if packed >= 1 << 63 else packed  # an i64 is signed


def _same(caller: wasmtime.Caller) -> wasmtime.Caller:
    return caller


def _int_to_float(value: Any) -> Any:
    return float(value) if isinstance(value, int) else value


def _float_coercer(results: tuple[str, ...]) -> Callable[[Any], Any] | None:
    floats = [r in ("f32", "f64") for r in results]
    if not any(floats):
        return None
    if len(results) == 1:
        return _int_to_float

    def coerce(values: Any) -> Any:
        return tuple(
            _int_to_float(v) if is_float else v for v, is_float in zip(values, floats, strict=True)
        )

    return coerce
