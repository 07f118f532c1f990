"""Bounded capture of a guest's stdout/stderr through pipes, drained by one pump thread.

Why pipes: a guest's output must be bounded *while it is written* (a guest printing forever must
not fill the host's memory or disk before its deadline), and cheaply. wasmtime's in-memory output
callback is called during each write (wasmtime 50), but a run captured through it costs more than
twice as much as through pipes (140 against 61 us for a hello, in process), and each write needs
the GIL in the middle of the guest's run. So each stream is a pipe; WASI opens
its write end by ``/proc/self/fd`` path (a description of its own, closed with the store), and
its read end is drained by its owner when the guest is done, or by one ``OutputPump`` thread for
the guests of the process that run long.

Rules:
- At most ``limit`` bytes are kept. On overflow a ``close`` capture closes its read end, so the
  guest's further writes fail (EPIPE) and it cannot block; a ``discard`` capture keeps draining
  and drops the excess (stderr: a noisy guest must not fail because of its logging), on Linux
  by splicing it to ``/dev/null`` without copying it through Python.
- Short guests never meet the pump. A new capture waits in the pump's pending list with an
  alarm on the process's clock (``clock.py``: no system call, no wake-up); a pipe holds
  ``PIPE_SIZE`` bytes without a reader (asked of the kernel for each pipe; at least the default
  ``PIPE_BUFFER`` where the system refuses), and the owner reads it all in ``finish()``, which
  cancels the alarm. Only a capture still open ``ADOPT_AFTER`` seconds after it was opened is
  adopted: its alarm wakes the pump (at the clock's first tick from then), which registers it
  with its selector and drains it as data arrives. So the pump thread sleeps while guests are
  short, however many: it wakes only for a capture to adopt or one adopted. Its wake-ups take
  the GIL from the thread running guests, which is why ``ADOPT_AFTER`` is not shorter, and why
  pipes are larger than the default: a guest that writes more than its pipe holds waits for
  adoption, at most ``ADOPT_AFTER`` and a tick once, and with ``PIPE_SIZE`` that is only a guest
  writing more than that.
- ``finish()`` is called once the guest's call has returned, on the thread that ran it. WASI
  writes are synchronous (``fd_write`` returns once the bytes are in the pipe), so everything
  the guest wrote is in the pipe then: ``finish`` takes the capture back from the pump and reads
  until the pipe is empty. It never waits for EOF, and never for the pump.
- Pipes are reused: each thread keeps the pipes of its finished captures (at most
  ``KEEP_PIPES``) for its next guests, instead of making and closing two pipes per request. A
  pipe is only kept when it was read until empty after the guest's call returned, with both
  ends open. Nothing can write to it afterwards: the only other writer was that guest's WASI
  file, and a guest writes only while its call runs. So nothing one guest wrote can reach the
  next one's output.
- The pump is fair: it reads at most ``BURST`` chunks from one pipe per wake-up, so a guest
  flooding its output (gigabytes a second) cannot starve the other guests' pipes.
- Fork-safe: a forked child (a pre-fork server such as gunicorn with ``--preload``) starts with
  fresh pumps, pipes and FIFO directory, and never removes its parent's.
- The pump thread never blocks on anything but ``select``; all pipe fds are non-blocking. Locks
  are taken in one order only: a capture's lock, then the pump's. A capture is in exactly one
  of: the pending list, the selector, neither (forgotten or closed); moves happen under the
  pump's lock.
"""

from __future__ import annotations

import array
import atexit
import contextlib
import fcntl
import itertools
import os
import selectors
import sys
import termios
import threading
import time
import weakref
from pathlib import Path
from typing import Literal

from .clock import Clock, process_clock

__all__ = [
    "ADOPT_AFTER",
    "BURST",
    "PIPE_BUFFER",
    "PIPE_SIZE",
    "Capture",
    "OutputPump",
    "default_pump",
    "private_dir",
]

_CHUNK = 65536
BURST = 4  # chunks the pump reads from one pipe before it looks at the others
ADOPT_AFTER = 0.01  # seconds a capture may go undrained before the pump takes it on
PIPE_BUFFER = 65536  # what a Linux pipe holds by default
# What each pipe is asked to hold: output a guest writes without a reader. Capacity (not use)
# counts against a user's pipe allowance (64 MiB by default for users other than root; past it
# the kernel gives every new pipe of the user one page): a worker keeps at most KEEP_PIPES per
# guest thread, so eight workers of nine threads each hold about 36 MiB.
PIPE_SIZE = 128 * 1024
KEEP_PIPES = 4  # finished pipes a thread keeps for its next captures (two per request)
_DISCARD = 1 << 20  # bytes a discarding capture drops per splice
# Linux: a discarding capture moves its excess to /dev/null inside the kernel (os.splice).
_DEVNULL = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC) if hasattr(os, "splice") else None


# Linux's pipe read copies until it has what was asked or the pipe is empty: a short read means
# the pipe was emptied (see Capture.finish).
_SHORT_READ_EMPTIES = sys.platform.startswith("linux")


def _available(read_fd: int) -> int | None:
    """Bytes waiting in a pipe (None if the system cannot tell)."""
    count = array.array("i", [0])
    try:
        fcntl.ioctl(read_fd, termios.FIONREAD, count)
    except OSError:
        return None
    return count[0]


def _enlarge(fd: int) -> None:
    """Ask for a ``PIPE_SIZE`` pipe; keep the default where the system refuses (e.g. a user past
    its pipe allowance) or cannot (no ``F_SETPIPE_SZ``)."""
    setsize = getattr(fcntl, "F_SETPIPE_SZ", None)
    if setsize is not None:
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, setsize, PIPE_SIZE)


class _Pipe:
    """A pipe and the path WASI opens its write end by. Where a private temporary directory
    can hold one, it is a named FIFO there: opening it costs about half of opening a
    ``/proc/self/fd`` link (a lookup through procfs), and WASI opens two per request."""

    __slots__ = ("fifo", "path", "pid", "read_fd", "target", "write_fd")

    def __init__(self) -> None:
        self.pid = os.getpid()
        if not self._open_fifo():
            self.read_fd, self.write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            self.path, self.fifo = f"/proc/self/fd/{self.write_fd}", False
        self.target = Path(self.path)  # made once: the pipe is reused by many runs
        _enlarge(self.read_fd)

    def _open_fifo(self) -> bool:
        """Make and open a FIFO in the private directory; False where none can be."""
        directory = private_dir() if hasattr(os, "mkfifo") else None
        if directory is None:
            return False
        path = os.path.join(directory, str(next(_fifo_names)))
        try:
            os.mkfifo(path, 0o600)
            self.read_fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            self.write_fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(path)
            return False
        self.path, self.fifo = path, True
        return True

    def close(self, read_fd: int | None, write_fd: int | None) -> None:
        """Close the ends still open (given) and remove the FIFO (only in the process that made
        it: a forked child must not take its parent's FIFOs away)."""
        for fd in (read_fd, write_fd):
            if fd is not None:
                os.close(fd)
        if self.fifo and self.pid == os.getpid():
            with contextlib.suppress(OSError):
                os.unlink(self.path)


_fifo_names = itertools.count()
_fifo_state: list[str | None] = []  # [the private directory, or None if none can be made]
_fifo_lock = threading.Lock()


def private_dir() -> str | None:
    """This process's private temporary directory (mode 0700, in memory where ``/dev/shm`` is
    writable), made on first use and removed at exit: the output FIFOs live there, and so do
    other per-request files of the process. None where none can be made."""
    if not _fifo_state:
        with _fifo_lock:
            if not _fifo_state:
                shm = "/dev/shm"
                base = shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None
                directory: str | None
                import tempfile  # here: a process that captures nothing never loads it

                try:
                    directory = tempfile.mkdtemp(prefix="wasmgate-", dir=base)
                except OSError:
                    directory = None
                else:
                    atexit.register(_remove_if_ours, directory, os.getpid())
                _fifo_state.append(directory)
    return _fifo_state[0]


def _remove_if_ours(directory: str, pid: int) -> None:
    if os.getpid() == pid:  # a forked child inherits the exit hook, not the directory
        import shutil

        shutil.rmtree(directory, ignore_errors=True)


class _ThreadPipes:
    """The reusable pipes of one thread; closed when the thread ends."""

    __slots__ = ("pipes",)

    def __init__(self) -> None:
        self.pipes: list[_Pipe] = []

    def __del__(self) -> None:
        for pipe in self.pipes:
            pipe.close(pipe.read_fd, pipe.write_fd)


class Capture:
    """One captured stream: give ``path`` to WASI, run the guest, then ``finish()``."""

    __slots__ = (
        "_alarm",
        "_buf",
        "_clock",
        "_forgotten",
        "_lock",
        "_pipe",
        "_pump",
        "_read_fd",
        "_write_fd",
        "limit",
        "mode",
        "overflowed",
        "path",
        "total",
    )

    def __init__(
        self,
        pump: OutputPump,
        pipe: _Pipe,
        limit: int,
        mode: Literal["close", "discard"],
    ) -> None:
        # We keep the write end open as long as the pipe lives: the pipe never reads as ended,
        # so the pipe can be reused, and the pump never mistakes "WASI has not opened it yet"
        # for "the guest is done".
        self._pipe = pipe
        self._read_fd: int | None = pipe.read_fd
        self._write_fd: int | None = pipe.write_fd
        self._pump = pump
        self._buf = bytearray()
        self._clock: Clock | None = None  # the clock of the pump's alarm, while pending
        self._alarm = 0
        self._forgotten = False  # set by finish(): from then on the pump never touches it
        self._lock = threading.Lock()
        self.limit = limit
        self.mode = mode
        self.overflowed = False
        self.total = 0
        self.path = pipe.target  # what WASI opens as the guest's stream

    def finish(self) -> bytes:
        """Everything captured (at most ``limit`` bytes). Call it once the guest's call has
        returned; the pipe goes back to this thread's pipes or is closed."""
        self._pump.forget(self)
        with self._lock:
            r, w = self._read_fd, self._write_fd
            # The pipe's content is final: read what it holds and no more (no read to find it
            # empty). Stdout (a ``close`` capture, rarely empty) is read at once where a short
            # read tells (Linux: a pipe read returns less than asked only once it has emptied
            # the pipe); otherwise ask the pipe how much it holds first (one system call less
            # for stderr, which is mostly empty).
            if r is None:
                clean = False
            elif self.mode == "close" and _SHORT_READ_EMPTIES:
                clean = not self._drain_locked(until_short=True)
            else:
                clean = not self._drain_locked(available=_available(r))
            self._read_fd = self._write_fd = None
        if clean and r is not None and w is not None:
            self._pump.keep(self._pipe)
        else:
            self._pipe.close(r, w)
        return bytes(self._buf)

    # --- called with the lock held, from the pump thread or from finish() -------------------

    def _drain_locked(
        self, burst: int | None = None, available: int | None = None, until_short: bool = False
    ) -> bool:
        """Read what is there (at most ``burst`` chunks, the ``available`` bytes the pipe is
        known to hold, or ``until_short``: until a read returns less than asked); True when the
        stream has ended (EOF, error, or a ``close`` capture's overflow)."""
        reads = 0
        while self._read_fd is not None:
            if burst is not None and reads >= burst:
                return False
            if available is not None and available <= 0:
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
                if available is not None:
                    available -= moved
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
            if available is not None:
                available -= len(chunk)
            room = self.limit - len(self._buf)
            if len(chunk) > room:
                if room > 0:
                    self._buf += chunk[:room]
                self.overflowed = True
                if self.mode == "close":
                    return True
            else:
                self._buf += chunk
            if until_short and len(chunk) < _CHUNK:
                return False
        return True

    def _close_locked(self) -> None:
        if self._read_fd is not None:
            os.close(self._read_fd)
            self._read_fd = None


class OutputPump:
    """One daemon thread draining the captures that stay open longer than ``ADOPT_AFTER``."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread: threading.Thread | None = None
        self._pending: dict[Capture, float] = {}  # capture -> when opened (insertion order)
        self.adopted = 0  # captures ever taken on by the pump thread (for tests and metrics)
        self.wakeups = 0  # times the pump thread woke up (for tests)
        self._local = threading.local()
        _pumps.add(self)

    def _after_fork_in_child(self) -> None:
        """A forked child gets no pump thread and must not share its parent's pipes: start
        afresh (the inherited pipes are left alone; the parent still uses them)."""
        self._selector = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread = None
        self._pending = {}
        self._local = threading.local()

    def _thread_pipes(self) -> _ThreadPipes:
        pipes: _ThreadPipes | None = getattr(self._local, "pipes", None)
        if pipes is None:
            pipes = self._local.pipes = _ThreadPipes()
        return pipes

    def _pipe(self) -> _Pipe:
        kept = self._thread_pipes().pipes
        return kept.pop() if kept else _Pipe()

    def keep(self, pipe: _Pipe) -> None:
        """Take back a finished, empty pipe for this thread's next capture."""
        kept = self._thread_pipes().pipes
        if len(kept) < KEEP_PIPES:
            kept.append(pipe)
        else:
            pipe.close(pipe.read_fd, pipe.write_fd)

    def open(self, limit: int, mode: Literal["close", "discard"] = "close") -> Capture:
        cap = Capture(self, self._pipe(), limit, mode)
        opened = time.monotonic()
        with self._lock:
            self._pending[cap] = opened
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="wasmgate-output", daemon=True
                )
                self._thread.start()
        clock = cap._clock = process_clock()
        cap._alarm = clock.alarm(self._wake_w, opened + ADOPT_AFTER)
        return cap

    def forget(self, cap: Capture) -> None:
        """Stop draining ``cap``; its owner reads the rest and closes it."""
        clock = cap._clock
        if clock is not None:
            cap._clock = None
            with contextlib.suppress(ValueError):  # the parent's clock, in a forked child
                clock.cancel(cap._alarm)
        with cap._lock:
            cap._forgotten = True
            fd = cap._read_fd
            with self._lock:
                if self._pending.pop(cap, None) is None and fd is not None:
                    with contextlib.suppress(KeyError, ValueError):
                        self._selector.unregister(fd)

    def _unregister(self, fd: int) -> None:
        with self._lock, contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(fd)

    def _adopt_due(self) -> None:
        """Register the pending captures opened ``ADOPT_AFTER`` ago or earlier (their alarms
        woke the pump; the others' alarms will)."""
        with self._lock:
            now = time.monotonic()
            while self._pending:
                cap, opened = next(iter(self._pending.items()))
                if opened + ADOPT_AFTER > now:
                    return
                del self._pending[cap]
                fd = cap._read_fd  # pending captures are open: only finish() closes, after forget
                if fd is not None:
                    self._selector.register(fd, selectors.EVENT_READ, cap)
                    self.adopted += 1

    def _run(self) -> None:
        while True:
            self._adopt_due()
            ready = self._selector.select()
            self.wakeups += 1
            for key, _ in ready:
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


_pumps: weakref.WeakSet[OutputPump] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    _fifo_state.clear()  # the child makes its own FIFO directory
    for pump in list(_pumps):
        pump._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

_default: OutputPump | None = None
_default_lock = threading.Lock()


def default_pump() -> OutputPump:
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = OutputPump()
    return _default
