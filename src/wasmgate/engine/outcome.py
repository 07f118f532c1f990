"""What happened when a guest ran, as a value: the engine never raises across layers for guest
behaviour. Each boundary maps an ``Outcome`` once, through one table each in ``errors``:
``Outcome.exit_status`` (``EXIT_STATUS``), ``Outcome.http_status`` (``HTTP_STATUS``) and
``Outcome.error()`` (the exception).

Rules:
- ``proc_exit(0)`` is success, exactly like returning from ``_start``.
- An epoch interrupt is a timeout and running out of fuel is a fuel limit: the engine reports
  both. The memory limit is reported only where the engine reports it: an instance whose initial
  memory exceeds ``max_memory``.
- A guest's own exit status and trap kind are facts, never replaced by a guess. The engine does
  not report a refused ``memory.grow`` (the guest sees -1 and goes on its own way), so when a
  guest fails while its linear memory is within max(1/8 of the cap, 1 MiB) of ``max_memory``
  (allocators grow in large steps, so the last refused step is usually that far from the cap),
  the outcome keeps its status and gets one ``hint`` line naming the setting the user used.
- Every other trap keeps wasmtime's own wording for its kind and a short wasm backtrace (at most
  ``MAX_FRAMES`` frames: a stack overflow has thousands).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import wasmtime

from ..errors import EXIT_STATUS, HTTP_STATUS, GuestExit, GuestTrap, LimitExceeded, WasmgateError
from ..limits import Limits
from ..units import format_duration, format_size

__all__ = [
    "MAX_FRAMES",
    "Outcome",
    "Status",
    "classify_failure",
    "exported_memory_size",
    "fold_error",
    "format_backtrace",
    "memory_hint",
    "timed_out",
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
    hint: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def exit_status(self) -> int:
        """The exit status of ``wasmgate run`` for this outcome."""
        if self.status == "ok":
            return 0
        if self.status == "exit":
            return self.exit_code
        return EXIT_STATUS[self.status]

    @property
    def http_status(self) -> int:
        """The HTTP status a route answers with for this outcome (200: the guest's response)."""
        return 200 if self.status == "ok" else HTTP_STATUS[self.status]

    def error(self) -> WasmgateError | None:
        """The exception this outcome stands for (with its ``hint``), or None on success."""
        error: WasmgateError
        if self.status == "ok":
            return None
        if self.status == "exit":
            error = GuestExit(self.exit_code)
        elif self.status == "trap":
            error = GuestTrap(self.trap_kind or "unknown", self.backtrace)
        elif self.status in ("timeout", "fuel", "memory"):
            error = LimitExceeded(self.status, self.message)
        else:
            error = WasmgateError(self.message)
        if self.hint:
            error.hint = self.hint  # type: ignore[attr-defined]
        return error


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


def memory_hint(limits: Limits, memory_size: int | None) -> str:
    """One line saying the guest was at its memory cap when it failed, or "" if it was not."""
    cap = limits.max_memory
    if cap is None or memory_size is None or memory_size + max(cap // 8, 2**20) <= cap:
        return ""
    return (
        f"its linear memory was {format_size(memory_size)}, near its limit of "
        f"{format_size(cap)} ({limits.name_of('max_memory')}): a refused memory.grow may be "
        "the cause"
    )


def timed_out(limits: Limits, timeout: float | None = None) -> Outcome:
    """The outcome of a run stopped at its deadline (``timeout``: a caller's shorter budget)."""
    seconds = timeout if timeout is not None else limits.timeout
    limit = format_duration(seconds) if seconds else "the deadline"
    return Outcome("timeout", message=f"guest timed out after {limit} (wall clock)")


def classify_failure(
    err: wasmtime.WasmtimeError | wasmtime.Trap,
    limits: Limits,
    *,
    memory_size: int | None,
    timeout: float | None = None,
) -> Outcome:
    """Turn an error raised by a wasm call into an Outcome (``ExitTrap(0)`` included);
    ``timeout`` is a caller's shorter budget, if it ran under one.

    Drops ``err``'s Python traceback: wasmtime-py raises traps from inside a generator that keeps
    the exception in a local, so exception, traceback and frames form a reference cycle that
    holds the caller's ``Store`` (and with it the guest's memory and its WASI pipes) until the
    cyclic garbage collector happens to run. Output capture waits for those pipes to close.
    """
    err.__traceback__ = None
    if isinstance(err, wasmtime.ExitTrap):
        if err.code == 0:
            return Outcome("ok", memory_size=memory_size)
        return Outcome(
            "exit",
            exit_code=err.code,
            message=f"guest exited with status {err.code}",
            memory_size=memory_size,
            hint=memory_hint(limits, memory_size),
        )
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
            return timed_out(limits, timeout)
        if code == wasmtime.TrapCode.OUT_OF_FUEL:
            return Outcome("fuel", message=f"guest ran out of fuel ({limits.fuel} units)")
        return Outcome(
            "trap",
            message=f"guest trapped: {kind}",
            trap_kind=kind,
            backtrace=backtrace,
            memory_size=memory_size,
            hint=memory_hint(limits, memory_size),
        )
    text = str(err)
    if "exceeds memory limits" in text and limits.max_memory is not None:
        cap = limits.max_memory
        return Outcome(
            "memory",
            message=(
                f"guest needs more memory than the {limits.name_of('max_memory')} limit of "
                f"{format_size(cap)} (its initial memory is larger)"
            ),
            memory_size=cap,
        )
    if "invalid exit status" in text:
        return Outcome(
            "error",
            exit_code=1,
            message="guest called proc_exit with an invalid status (valid: 0-125)",
        )
    return Outcome("error", exit_code=1, message=fold_error(err))
