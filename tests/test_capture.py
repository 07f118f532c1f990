"""Output capture without wasm: a writer thread stands in for the guest's WASI stream, opening the
capture's path as WASI does."""

from __future__ import annotations

import fcntl
import os
import signal
import threading
import time

import pytest

from process_support import child_exit_code
from wasmgate.engine import capture
from wasmgate.engine.capture import ADOPT_AFTER, PIPE_BUFFER, PIPE_SIZE, OutputPump


def _write(path: str, data: bytes, chunk: int = 65536) -> int:
    """Write like a guest: open the path (blocking), write everything, close; bytes written."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    done = 0
    try:
        while done < len(data):
            done += os.write(fd, data[done : done + chunk])
    except BrokenPipeError:
        pass
    finally:
        os.close(fd)
    return done


def test_output_is_captured_and_the_pipe_reused_empty() -> None:
    pump = OutputPump()
    first = pump.open(1024)
    _write(first.path, b"hello")
    assert first.finish() == b"hello"
    again = pump.open(1024)
    assert again.path == first.path  # the same pipe, kept by this thread
    assert again.finish() == b""  # and nothing of the first stream is left in it
    other = pump.open(1024)
    _write(other.path, b"second")
    assert other.finish() == b"second"


@pytest.mark.parametrize("mode", ["close", "discard"])
@pytest.mark.parametrize("size", [0, 1, 65535, 65536, 65537, 2 * 65536, PIPE_SIZE - 1])
def test_finish_reads_exactly_what_the_guest_wrote(mode: str, size: int) -> None:
    """Stdout is read until a short read (a read of exactly the chunk size goes on), stderr as
    much as the pipe says it holds: either way everything, and the kept pipe is empty."""
    pump = OutputPump()
    data = bytes(i % 251 for i in range(size))
    first = pump.open(PIPE_SIZE * 2, mode)  # type: ignore[arg-type]
    _write(first.path, data)
    assert first.finish() == data
    again = pump.open(PIPE_SIZE * 2, mode)  # type: ignore[arg-type]
    assert again.path == first.path  # kept: it was read empty
    _write(again.path, b"next")
    assert again.finish() == b"next"


def test_a_guest_writing_more_than_the_pipe_holds_is_drained_by_the_pump() -> None:
    pump = OutputPump()
    cap = pump.open(4 * PIPE_SIZE)
    data = os.urandom(3 * PIPE_SIZE)
    writer = threading.Thread(target=_write, args=(cap.path, data))
    writer.start()
    writer.join(5)  # blocks on the full pipe until the pump adopts the capture
    assert not writer.is_alive()
    assert pump.adopted >= 1
    assert cap.finish() == data


def test_close_mode_overflow_fails_the_writer_and_drops_the_pipe() -> None:
    pump = OutputPump()
    cap = pump.open(1000, "close")
    written = _write(cap.path, b"x" * (4 * PIPE_SIZE))
    assert written < 4 * PIPE_SIZE  # EPIPE once the capture closed its read end
    assert cap.finish() == b"x" * 1000
    assert cap.overflowed
    assert pump.open(1000).path != cap.path  # an overflowed pipe is never reused


def test_discard_mode_keeps_the_start_and_counts_the_rest() -> None:
    pump = OutputPump()
    cap = pump.open(100, "discard")
    total = 5 * PIPE_SIZE
    assert _write(cap.path, b"e" * total) == total  # never fails the writer
    assert cap.finish() == b"e" * 100
    assert cap.overflowed
    assert cap.total == total


def test_pipes_hold_pipe_size_bytes_without_a_reader() -> None:
    """A guest writing up to PIPE_SIZE bytes never waits for the pump (where the system allows
    pipes that large: it does for root and within a user's pipe allowance)."""
    if not hasattr(fcntl, "F_GETPIPE_SZ"):
        pytest.skip("no F_GETPIPE_SZ on this system")
    cap = OutputPump().open(2 * PIPE_SIZE)
    fd = os.open(cap.path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        assert fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ) >= PIPE_SIZE
        data = os.urandom(PIPE_SIZE)
        assert os.write(fd, data) == PIPE_SIZE  # all of it, at once, with nobody reading
    finally:
        os.close(fd)
    assert cap.finish() == data


def test_a_pipe_the_system_will_not_enlarge_still_captures(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(capture, "PIPE_SIZE", 1 << 40)  # refused (EINVAL or EPERM)
    cap = OutputPump().open(4 * PIPE_BUFFER)
    data = os.urandom(3 * PIPE_BUFFER)
    writer = threading.Thread(target=_write, args=(cap.path, data))
    writer.start()
    writer.join(5)  # more than a default pipe holds: drained by the pump
    assert not writer.is_alive()
    assert cap.finish() == data


def test_short_captures_never_wake_the_pump() -> None:
    pump = OutputPump()
    slow = 0  # captures that were not short after all (this process descheduled: a busy machine)
    for _ in range(50):
        opened = time.monotonic()
        cap = pump.open(1024)
        _write(cap.path, b"quick")
        assert cap.finish() == b"quick"
        slow += time.monotonic() - opened >= ADOPT_AFTER
    time.sleep(ADOPT_AFTER * 3)
    assert pump.adopted <= slow


def test_without_a_fifo_directory_proc_paths_are_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capture, "_fifo_state", [None])
    pump = OutputPump()
    cap = pump.open(1024)
    assert str(cap.path).startswith("/proc/self/fd/")
    _write(cap.path, b"via procfs")
    assert cap.finish() == b"via procfs"


def test_fifos_live_in_a_private_directory() -> None:
    cap = OutputPump().open(16)
    directory = os.path.dirname(cap.path)
    assert os.stat(directory).st_mode & 0o777 == 0o700
    cap.finish()


LOOP = '(module (func (export "_start") (loop (br 0))))'


def test_a_forked_child_gets_its_own_pipes_and_ticker() -> None:
    import wasmtime

    from wasmgate.engine import EngineSettings, get_engine
    from wasmgate.engine.sandbox import new_store
    from wasmgate.limits import Limits

    pump = OutputPump()
    first = pump.open(64)
    _write(first.path, b"parent")
    assert first.finish() == b"parent"  # kept for this thread's next capture
    handle = get_engine(EngineSettings(pooling=True))
    new_store(handle, Limits(timeout=1.0))  # the ticker runs in the parent
    # Compiled before the fork: wasmtime's own compile threads do not survive one.
    module = wasmtime.Module(handle.engine, LOOP)
    pid = os.fork()
    if pid == 0:  # the child: report through the exit status only
        signal.alarm(10)  # a child whose guest is never stopped dies instead of hanging
        ok = False
        try:
            cap = pump.open(64)
            _write(cap.path, b"child")
            fresh = cap.path != first.path and os.path.dirname(cap.path) != os.path.dirname(
                first.path
            )
            store = new_store(handle, Limits(timeout=0.2))
            instance = wasmtime.Instance(store, module, [])
            try:
                instance.exports(store)["_start"](store)  # type: ignore[operator]
                stopped = False
            except wasmtime.Trap:
                stopped = True  # the child's own ticker reached the deadline
            ok = fresh and cap.finish() == b"child" and stopped
        finally:
            os._exit(0 if ok else 1)
    assert child_exit_code(pid) == 0
    again = pump.open(64)  # the parent's FIFO survived the child's exit
    assert again.path == first.path
    _write(again.path, b"still here")
    assert again.finish() == b"still here"
