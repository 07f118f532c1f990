"""Bounded capture of a guest's stdout/stderr through pipes, drained by one pump thread.

Why pipes: a guest's output must be bounded *while it is written* (a guest printing forever must
not fill the host's memory or disk before its deadline), and wasmtime-py's in-memory callback
delivers data asynchronously, after the call has returned. So each stream is a pipe whose write
end the guest gets (by ``/proc/self/fd`` path), and whose read end one ``OutputPump`` thread
drains for every guest of the process.

Rules:
- At most ``limit`` bytes are kept. On overflow a ``close`` capture closes its read end, so the
  guest's further writes fail (EPIPE) and it cannot block; a ``discard`` capture keeps draining
  and drops the excess (stderr: a noisy guest must not fail because of its logging), on Linux
  by splicing it to ``/dev/null`` without copying it through Python.
- ``finish()`` is called after the guest's store is gone. The store owns the write end, so EOF
  follows; ``finish`` takes the capture back from the pump and reads the rest itself (it never
  waits for the pump, which may be busy with other guests); if something still holds the store,
  it stops waiting after ``grace`` seconds and takes what has arrived: it never hangs.
- The pump is fair: it reads at most ``BURST`` chunks from one pipe per wake-up, so a guest
  flooding its output (gigabytes a second) cannot starve the other guests' pipes.
- The pump thread never blocks on anything but ``select``; all pipe fds are non-blocking. Locks
  are taken in one order only: a capture's lock, then the pump's.
"""

from __future__ import annotations

import contextlib
import os
import select
import selectors
import threading
import time
from typing import Literal

__all__ = ["BURST", "Capture", "OutputPump", "default_pump"]

_CHUNK = 65536
BURST = 4  # chunks the pump reads from one pipe before it looks at the others
_DISCARD = 1 << 20  # bytes a discarding capture drops per splice
# Linux: a discarding capture moves its excess to /dev/null inside the kernel (os.splice).
_DEVNULL = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC) if hasattr(os, "splice") else None


class Capture:
    """One captured stream: give ``path`` to WASI, ``close_writer()``, then ``finish()``."""

    __slots__ = (
        "_buf",
        "_forgotten",
        "_lock",
        "_pump",
        "_read_fd",
        "_write_fd",
        "limit",
        "mode",
        "overflowed",
        "path",
        "total",
    )

    def __init__(self, pump: OutputPump, limit: int, mode: Literal["close", "discard"]) -> None:
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._read_fd: int | None = r
        self._write_fd: int | None = w
        self._pump = pump
        self._buf = bytearray()
        self._forgotten = False  # set by finish(): from then on the pump never touches it
        self._lock = threading.Lock()
        self.limit = limit
        self.mode = mode
        self.overflowed = False
        self.total = 0
        self.path = f"/proc/self/fd/{w}"

    def close_writer(self) -> None:
        """Drop our copy of the write end (WASI opened its own); EOF then follows the guest's."""
        if self._write_fd is not None:
            os.close(self._write_fd)
            self._write_fd = None

    def finish(self, grace: float = 0.5) -> bytes:
        """Everything captured (at most ``limit`` bytes). Closes the pipe."""
        self.close_writer()
        self._pump.forget(self)
        deadline = time.monotonic() + grace
        while True:
            with self._lock:
                if self._read_fd is None or self._drain_locked():
                    break
                fd = self._read_fd
            left = deadline - time.monotonic()
            if left <= 0:
                break
            # Only finish() closes the fd now (the pump forgot this capture), so it stays valid.
            # poll, not select: fds above 1023 are common on a busy server.
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            poller.poll(max(1, int(left * 1000)))
        with self._lock:
            self._close_locked()
        return bytes(self._buf)

    # --- called with the lock held, from the pump thread or from finish() -------------------

    def _drain_locked(self, burst: int | None = None) -> bool:
        """Read what is available (at most ``burst`` chunks); True when the stream has ended
        (EOF, error, or a ``close`` capture's overflow)."""
        reads = 0
        while self._read_fd is not None:
            if burst is not None and reads >= burst:
                return False
            if self.overflowed and _DEVNULL is not None:  # discarding: never copy the excess
                try:
                    moved = os.splice(self._read_fd, _DEVNULL, _DISCARD, flags=os.SPLICE_F_NONBLOCK)
                except BlockingIOError:
                    return False
                except OSError:
                    return True
                if not moved:
                    return True
                reads += 1
                self.total += moved
                continue
            try:
                chunk = os.read(self._read_fd, _CHUNK)
            except BlockingIOError:
                return False
            except OSError:
                return True
            if not chunk:
                return True
            reads += 1
            self.total += len(chunk)
            room = self.limit - len(self._buf)
            if len(chunk) > room:
                if room > 0:
                    self._buf += chunk[:room]
                self.overflowed = True
                if self.mode == "close":
                    return True
            else:
                self._buf += chunk
        return True

    def _close_locked(self) -> None:
        if self._read_fd is not None:
            os.close(self._read_fd)
            self._read_fd = None


class OutputPump:
    """One daemon thread draining every registered capture (started on first use)."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread: threading.Thread | None = None

    def open(self, limit: int, mode: Literal["close", "discard"] = "close") -> Capture:
        cap = Capture(self, limit, mode)
        with self._lock:
            assert cap._read_fd is not None
            self._selector.register(cap._read_fd, selectors.EVENT_READ, cap)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="wasmgate-output", daemon=True
                )
                self._thread.start()
        # epoll watches a newly registered fd even while the pump is already waiting in it, so
        # the wake-up (a context switch per request) is only needed for select/poll selectors.
        if not isinstance(self._selector, selectors.EpollSelector):
            self._wake()
        return cap

    def forget(self, cap: Capture) -> None:
        """Stop draining ``cap``; its owner reads the rest and closes it."""
        with cap._lock:
            cap._forgotten = True
            fd = cap._read_fd
            if fd is not None:
                self._unregister(fd)

    def _unregister(self, fd: int) -> None:
        with self._lock, contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(fd)

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"x")

    def _run(self) -> None:
        while True:
            for key, _ in self._selector.select():
                cap = key.data
                if cap is None:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_r, 4096)
                    continue
                assert isinstance(cap, Capture)
                with cap._lock:
                    if cap._forgotten or cap._read_fd is None or cap._read_fd != key.fd:
                        continue
                    if cap._drain_locked(BURST):
                        # Unregister before closing: a new pipe may reuse the fd number at once.
                        self._unregister(cap._read_fd)
                        cap._close_locked()


_default: OutputPump | None = None
_default_lock = threading.Lock()


def default_pump() -> OutputPump:
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = OutputPump()
    return _default
