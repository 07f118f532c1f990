"""What happened when a guest ran, as a value: the engine never raises across layers for guest
behaviour. Each boundary maps an ``Outcome`` once: the CLI to an exit status, the gateway to an
HTTP status (both through ``Outcome.error()`` and the error classes' ``exit_code``/``http_status``).

Rules:
- ``proc_exit(0)`` is success, exactly like returning from ``_start``.
- An epoch interrupt is a timeout and running out of fuel is a fuel limit. The engine does not
  report a refused ``memory.grow`` (the guest just sees -1 and fails its own way), so a failure
  (trap or non-zero exit) while linear memory is within max(1/8 of the cap, 1 MiB) of
  ``max_memory`` is reported as the memory limit: allocators grow in large steps, so the last
  refused step is usually that far from the cap.
- Every other trap keeps wasmtime's own wording for its kind and a short wasm backtrace (at most
  ``MAX_FRAMES`` frames: a stack overflow has thousands).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

import wasmtime

from ..errors import GuestExit, GuestTrap, LimitExceeded, WasmgateError
from ..units import format_duration, format_size

__all__ = [
    "MAX_FRAMES",
    "Outcome",
    "Status",
    "classify_failure",
    "exported_memory_size",
    "fold_error",
    "format_backtrace",
]

Status = Literal["ok", "exit", "trap", "timeout", "fuel", "memory", "error"]
MAX_FRAMES = 16
WASM_PAGE = 65536


@dataclass(frozen=True, slots=True)
class Outcome:
    status: Status
    exit_code: int = 0
    message: str = ""
    trap_kind: str | None = None
    backtrace: str = ""
    results: tuple[Any, ...] = ()
    fuel_consumed: int | None = None
    elapsed: float = 0.0
    memory_size: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def error(self) -> WasmgateError | None:
        """The error this outcome stands for, or None on success."""
        if self.status == "ok":
            return None
        if self.status == "exit":
            return GuestExit(self.exit_code)
        if self.status == "trap":
            return GuestTrap(self.trap_kind or "unknown", self.backtrace)
        if self.status in ("timeout", "fuel", "memory"):
            return LimitExceeded(self.status, self.message)
        return WasmgateError(self.message)


def fold_error(err: BaseException) -> str:
    """wasmtime's error text as one line: the headline and its causes joined by ': '."""
    parts: list[str] = []
    for raw in str(err).splitlines():
        line = raw.strip()
        if not line or line == "Caused by:":
            continue
        line = re.sub(r"^\d+:\s+", "", line)
        if line not in parts:
            parts.append(line)
    return ": ".join(parts) or type(err).__name__


def format_backtrace(trap: wasmtime.Trap) -> str:
    frames = trap.frames
    lines = []
    for i, frame in enumerate(frames[:MAX_FRAMES]):
        name = frame.func_name or f"<wasm function {frame.func_index}>"
        module = frame.module_name or "<module>"
        offset = frame.module_offset
        where = f"0x{offset:x}" if offset < 2**32 else "?"
        lines.append(f"  {i:>3}: {where:>8} - {module}!{name}")
    if len(frames) > MAX_FRAMES:
        lines.append(f"  ... {len(frames) - MAX_FRAMES} more frames")
    return "\n".join(lines)


_TEXT_CODES = {
    "interrupt": wasmtime.TrapCode.INTERRUPT,
    "all fuel consumed by WebAssembly": wasmtime.TrapCode.OUT_OF_FUEL,
}


def _trap_kind(message: str, code: wasmtime.TrapCode | None) -> str | None:
    for raw in reversed(message.splitlines()):
        line = re.sub(r"^\d+:\s+", "", raw.strip())
        if line.startswith("wasm trap:"):
            return line.removeprefix("wasm trap:").strip()
    return code.name.lower().replace("_", " ") if code is not None else None


def _text_backtrace(err: BaseException) -> str:
    lines = str(err).splitlines()
    frames: list[str] = []
    inside = False
    for line in lines:
        if "wasm backtrace:" in line:
            inside = True
        elif line.startswith("Caused by:") or not line.strip():
            inside = False
        elif inside:
            frames.append("  " + line.strip())
    if len(frames) > MAX_FRAMES:
        frames = [*frames[:MAX_FRAMES], f"  ... {len(frames) - MAX_FRAMES} more frames"]
    return "\n".join(frames)


def exported_memory_size(store: wasmtime.Store, instance: wasmtime.Instance | None) -> int | None:
    """Bytes of the instance's exported ``memory`` (what ``classify_failure`` needs to tell a
    memory-limit failure from another), or None."""
    if instance is None:
        return None
    mem = instance.exports(store).get("memory")
    return mem.data_len(store) if isinstance(mem, wasmtime.Memory) else None


def classify_failure(
    err: wasmtime.WasmtimeError | wasmtime.Trap,
    *,
    timeout: float | None,
    fuel: int | None,
    max_memory: int | None,
    memory_size: int | None,
) -> Outcome:
    """Turn an error raised by a wasm call into an Outcome (``ExitTrap(0)`` included).

    Drops ``err``'s Python traceback: wasmtime-py raises traps from inside a generator that keeps
    the exception in a local, so exception, traceback and frames form a reference cycle that
    holds the caller's ``Store`` (and with it the guest's memory and its WASI pipes) until the
    cyclic garbage collector happens to run. Output capture waits for those pipes to close.
    """
    err.__traceback__ = None
    memory_capped = (
        max_memory is not None
        and memory_size is not None
        and memory_size + max(max_memory // 8, 2**20) > max_memory
    )
    if isinstance(err, wasmtime.ExitTrap):
        if err.code == 0:
            return Outcome("ok", memory_size=memory_size)
        if memory_capped:
            return _memory(max_memory, memory_size, f"exit status {err.code}")
        return Outcome("exit", exit_code=err.code, message=f"guest exited with status {err.code}")
    if isinstance(err, wasmtime.Trap):
        code = err.trap_code
        kind = _trap_kind(err.message, code)
        backtrace = format_backtrace(err)
    else:
        # Component calls report traps as plain errors; the trap is in the text.
        text_kind = _trap_kind(str(err), None)
        if text_kind is None:
            code, kind, backtrace = None, None, ""
        else:
            code, kind, backtrace = _TEXT_CODES.get(text_kind), text_kind, _text_backtrace(err)
    if kind is not None:
        if code == wasmtime.TrapCode.INTERRUPT:
            limit = format_duration(timeout) if timeout else "the deadline"
            return Outcome("timeout", message=f"guest timed out after {limit} (wall clock)")
        if code == wasmtime.TrapCode.OUT_OF_FUEL:
            return Outcome("fuel", message=f"guest ran out of fuel ({fuel} units)")
        if memory_capped:
            return _memory(max_memory, memory_size, kind)
        return Outcome(
            "trap",
            message=f"guest trapped: {kind}",
            trap_kind=kind,
            backtrace=backtrace,
            memory_size=memory_size,
        )
    text = str(err)
    if "exceeds memory limits" in text and max_memory is not None:
        return _memory(max_memory, memory_size, "its initial memory is larger")
    if "invalid exit status" in text:
        return Outcome(
            "error",
            exit_code=1,
            message="guest called proc_exit with an invalid status (valid: 0-125)",
        )
    return Outcome("error", exit_code=1, message=fold_error(err))


def _memory(max_memory: int | None, memory_size: int | None, cause: str) -> Outcome:
    assert max_memory is not None
    return Outcome(
        "memory",
        message=(
            f"guest ran out of memory: the --max-memory limit of {format_size(max_memory)} "
            f"was reached ({cause})"
        ),
        memory_size=memory_size,
    )
