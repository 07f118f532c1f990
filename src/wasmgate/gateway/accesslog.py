"""The access log: one JSON object per request, formatted cheaply and written in batches.

Rules:
- A record is one line of JSON with the fields in a fixed order (``format_record``): strings
  escaped to ASCII as ``json.dumps`` does, durations in milliseconds rounded to 3 decimals. It is
  formatted on the event loop when its request is finished, by one f-string (no encoder object,
  no dict, no keyword arguments).
- Where it goes: under ``wasmgate serve`` (``server.py`` calls ``start_direct``), to a
  ``LineWriter`` on the process's stderr (file descriptor 2), in exactly the line that logging's
  handler would have written (``<asctime> INFO [worker N] wasmgate.access: <json>``), but without
  a ``LogRecord`` and without a system call per request. ``start_direct`` takes that path only
  when it writes what logging would have: the ``wasmgate.access`` logger and its parents have no
  handler nor filter of their own, and the root logger has the one stderr handler with the
  format that ``wasmgate serve`` set. Everywhere else (``create_app`` under another ASGI server,
  an application that configured logging, the tests' in-process gateways) each record is an INFO
  record on the ``wasmgate.access`` logger, as before, so the host's logging gets every line.
- The ``LineWriter`` (``open_writer``) is the ``wasmgate._accesslog`` extension's ``Writer``
  where it was built: one C call formats the line (the record as ``format_record`` makes it,
  after the time stamp) into a buffer that a C thread writes, never taking the GIL; tests
  compare its lines with the pure-Python ``BatchWriter``'s on every kind of field. Without the
  extension (no C compiler at install, or ``WASMGATE_NATIVE=0``) it is the ``BatchWriter``. Both
  keep the rules below.
- Batches: the event loop only appends the line to a buffer under a lock (no system call).
  A writer thread writes what has gathered at most ``FLUSH_INTERVAL`` seconds after the first
  line of a batch arrived (so ``tail -f`` stays live; an idle writer sleeps without waking up;
  ``WASMGATE_ACCESS_LOG_INTERVAL`` sets another number of seconds, from 0.001 to 60),
  sooner once ``SOFT_LIMIT`` bytes wait. Past ``HARD_LIMIT`` bytes (stderr blocked: nobody reads
  the pipe) the event loop writes the batch itself and so waits, as a blocking ``logging``
  handler did: lines are never dropped, memory stays bounded.
- Every ``write(2)`` carries whole lines only. On a regular file a batch is one ``write(2)``: Linux
  serialises writes to a file (and with ``O_APPEND`` each lands at the end), so the batches of
  several worker processes sharing the file never interleave inside a line. On anything else (a
  pipe, a terminal, a socket) a write is at most ``PIPE_BUF`` (4096) bytes, the size up to which
  POSIX makes a pipe write atomic with respect to every other writer (the other workers, and
  each process's logging records): ``cuts``. A single line longer than ``PIPE_BUF`` (only a
  request path of several KiB; ``MAX_URL`` is 8 KiB) is written alone, and on a pipe is the one
  case in which another process's concurrent write may land inside it.
- ``close`` writes what is left and stops the thread: ``server.py`` calls it when uvicorn has
  drained (SIGTERM/SIGINT, in the single process and in every worker), and ``atexit`` calls it
  too; a line that comes after it is written at once. Only a process killed outright (SIGKILL)
  loses its last ``FLUSH_INTERVAL`` of lines. A child forked after ``start_direct`` logs through
  the logger (it has no writer thread; the C writer refuses to be used there).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import stat
import threading
import time
from json.encoder import encode_basestring_ascii as _quote
from typing import Any, Protocol

from ..engine.lowlevel import optional_extension

__all__ = [
    "FLUSH_INTERVAL",
    "INTERVAL_ENV",
    "BatchWriter",
    "LineWriter",
    "access_log",
    "cuts",
    "format_record",
    "open_writer",
    "start_direct",
    "stop_direct",
]

FLUSH_INTERVAL = 0.5  # seconds a line may wait for its batch
INTERVAL_ENV = "WASMGATE_ACCESS_LOG_INTERVAL"
SOFT_LIMIT = 256 * 1024  # bytes waiting that wake the writer thread at once
HARD_LIMIT = 8 * 1024 * 1024  # bytes waiting past which the event loop writes them itself
PIPE_BUF = 4096  # POSIX guarantees at least 512; Linux (and macOS for pipes) 4096

_access = logging.getLogger("wasmgate.access")
_INFO = logging.INFO


def format_record(
    rid: str,
    method: str,
    path: str,
    route: str,
    status: int,
    cause: str,
    seconds: float,
    guest_seconds: float | None,
    inline: bool,
    bytes_in: int,
    bytes_out: int,
    client: str | None,
) -> str:
    """The JSON object of one request (no newline)."""
    guest = "null" if guest_seconds is None else _ms(guest_seconds)
    return (
        f'{{"id":{_quote(rid)},"method":{_quote(method)},"path":{_quote(path)},'
        f'"route":{_quote(route)},"status":{status},"cause":{_quote(cause)},'
        f'"ms":{_ms(seconds)},"guest_ms":{guest},'
        f'"inline":{"true" if inline else "false"},"bytes_in":{bytes_in},'
        f'"bytes_out":{bytes_out},"client":{"null" if client is None else _quote(client)}}}'
    )


def _ms(seconds: float) -> str:
    """``repr(round(seconds * 1000, 3))`` (what ``json.dumps`` writes for it) in half the time:
    both round correctly to three decimals, and below 1e12 (floats there are closer together
    than 0.001) the shortest repr of such a number is those decimals without trailing zeros."""
    millis = seconds * 1000
    if not 0 <= millis < 1e12:
        return repr(round(millis, 3))
    text = f"{millis:.3f}".rstrip("0")
    return text + "0" if text[-1] == "." else text


# A request's fields, in ``format_record``'s order (``access_log`` names them).
RecordFields = tuple[str, str, str, str, int, str, float, float | None, bool, int, int, str | None]


class LineWriter(Protocol):
    """What ``open_writer`` returns: the extension's ``Writer``, or a ``BatchWriter``."""

    @property
    def errors(self) -> int: ...

    def record(self, *fields: *RecordFields) -> None: ...

    def write(self, line: str, /) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


def open_writer(
    fd: int, interval: float = FLUSH_INTERVAL, tag: str = "", *, native: bool = True
) -> LineWriter:
    """A writer of access lines to ``fd`` (see the rules), each line prefixed as ``wasmgate
    serve``'s log format prefixes a record (``tag`` before the logger's name): the extension's
    where it was built (unless ``native`` is False or ``WASMGATE_NATIVE=0``), else a
    ``BatchWriter``. ``fd`` is not closed by ``close``."""
    module = _extension() if native else None
    if module is None:
        return BatchWriter(fd, interval, tag)
    writer: LineWriter = module.Writer(fd, _chunk(fd), interval, SOFT_LIMIT, HARD_LIMIT, _tail(tag))
    return writer


def _extension() -> Any:
    """The ``wasmgate._accesslog`` extension, or None: not built, or turned off."""
    return optional_extension("_accesslog")


def _chunk(fd: int) -> int:
    """The most bytes a write(2) to ``fd`` may carry (0: no limit): see the rules."""
    try:
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
    except OSError:
        regular = False
    return 0 if regular else PIPE_BUF


def _tail(tag: str) -> str:
    return f" INFO {tag}wasmgate.access: "


def cuts(data: bytes, chunk: int) -> list[int]:
    """Where the write(2) calls of ``data`` (whole lines) end: all of it where ``chunk`` is 0,
    else as many whole lines as fit in ``chunk`` bytes, a longer line alone."""
    ends: list[int] = []
    start, size = 0, len(data)
    while start < size:
        end = size
        if chunk and size - start > chunk:
            newline = data.rfind(b"\n", start, start + chunk)
            if newline < 0:
                newline = data.find(b"\n", start + chunk)
            end = size if newline < 0 else newline + 1
        ends.append(end)
        start = end
    return ends


class BatchWriter:
    """The pure-Python ``LineWriter``: lines gathered from any thread and written to ``fd`` by a
    thread of its own (see the rules)."""

    def __init__(self, fd: int, interval: float = FLUSH_INTERVAL, tag: str = "") -> None:
        self._fd = fd
        self._interval = interval
        self._chunk = _chunk(fd)
        self._tail = _tail(tag)
        self._second = -1
        self._stamp = ""
        self._lines: list[str] = []
        self._size = 0
        self._lock = threading.Lock()  # _lines and _size
        self._writing = threading.Lock()  # one writer of fd at a time: batches stay in order
        self._pending = threading.Event()  # a batch has begun
        self._urgent = threading.Event()  # write it now (large, or closing)
        self._closed = False
        self.errors = 0  # writes that failed (stderr closed...)
        self.writes = 0  # write(2) calls begun
        self._thread = threading.Thread(target=self._run, name="wasmgate-access-log", daemon=True)
        self._thread.start()

    def record(self, *fields: *RecordFields) -> None:
        """Queue the line of one request: the record (``format_record``) after the time stamp
        and the tail that logging's format would put before it."""
        record = format_record(*fields)
        now = time.time()
        second = int(now)
        if second != self._second:  # logging.Formatter's default asctime, once a second
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
            self._second = second
        millis = int((now - second) * 1000)
        self.write(f"{self._stamp},{millis:03d}{self._tail}{record}\n")

    def write(self, line: str, /) -> None:
        """Queue ``line`` (ending with a newline). Never blocks on the file unless
        ``HARD_LIMIT`` bytes are waiting already (or the writer is closed)."""
        with self._lock:
            lines = self._lines
            if not lines:
                self._pending.set()
            lines.append(line)
            before = self._size
            self._size = size = before + len(line)
        if size >= SOFT_LIMIT > before:
            self._urgent.set()
        if size >= HARD_LIMIT or self._closed:
            self.flush()

    def flush(self) -> None:
        """Write every line queued so far, in order."""
        with self._writing:
            with self._lock:
                lines = self._lines
                self._lines = []
                self._size = 0
                self._pending.clear()
            if lines:
                data = "".join(lines).encode("utf-8", "backslashreplace")
                start = 0
                for end in cuts(data, self._chunk):
                    self._write_all(memoryview(data)[start:end])
                    start = end

    def close(self) -> None:
        """Write what is left and stop the thread (idempotent)."""
        self._closed = True
        self._urgent.set()
        self._pending.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(5.0)
        self.flush()

    def _run(self) -> None:
        while True:
            self._pending.wait()
            self._urgent.wait(self._interval)
            self._urgent.clear()
            closed = self._closed
            self.flush()
            if closed:
                return

    def _write_all(self, view: memoryview) -> None:
        self.writes += 1
        while view:
            try:
                n = os.write(self._fd, view)
            except InterruptedError:
                continue
            except BlockingIOError:  # someone made the fd non-blocking: wait for room
                time.sleep(0.01)
                continue
            except OSError:
                self.errors += 1  # stderr is gone: there is nowhere left to say so
                return
            view = view[n:]


_direct: LineWriter | None = None


def access_log(
    rid: str,
    method: str,
    path: str,
    route: str,
    status: int,
    cause: str,
    seconds: float,
    guest_seconds: float | None,
    inline: bool,
    bytes_in: int,
    bytes_out: int,
    client: str | None,
) -> None:
    """Log one finished request (see the rules for where it goes)."""
    if not _access.isEnabledFor(_INFO):
        return
    fields = (
        rid,
        method,
        path,
        route,
        status,
        cause,
        seconds,
        guest_seconds,
        inline,
        bytes_in,
        bytes_out,
        client,
    )
    direct = _direct
    if direct is not None:
        direct.record(*fields)
    else:
        _access.info(format_record(*fields))


def start_direct(log_format: str, tag: str = "") -> bool:
    """Write access lines straight to stderr in batches, when that is exactly what logging would
    write (see the rules): ``log_format`` is the format ``wasmgate serve`` gave the root
    handler, ``tag`` what it puts before the logger's name (``"[worker 0] "``). True if
    started (or already running)."""
    global _direct
    if _direct is not None:
        return True
    if not _logging_is_plain(log_format, tag):
        return False
    import sys

    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    _direct = open_writer(fd, _interval(), tag)
    atexit.register(stop_direct)
    return True


def stop_direct() -> None:
    """Write what is queued and go back to the logger (idempotent)."""
    global _direct
    direct, _direct = _direct, None
    if direct is not None:
        with contextlib.suppress(Exception):
            import sys

            sys.stderr.flush()  # records logged before these lines go first
        direct.close()


def _forget_in_child() -> None:
    """A forked child has the queue but not the writer thread: its lines go to the logger."""
    global _direct
    _direct = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


def _interval() -> float:
    text = os.environ.get(INTERVAL_ENV, "")
    try:
        value = float(text)
    except ValueError:
        return FLUSH_INTERVAL
    return value if 0.001 <= value <= 60 else FLUSH_INTERVAL


def _logging_is_plain(log_format: str, tag: str) -> bool:
    import sys

    expected = log_format.replace("%(name)s", f"{tag}%(name)s", 1)
    logger: logging.Logger | None = _access
    while logger is not None and logger is not logging.root:
        if logger.handlers or logger.filters or logger.disabled or not logger.propagate:
            return False
        logger = logger.parent
    root = logging.root
    if len(root.handlers) != 1 or root.filters:
        return False
    handler = root.handlers[0]
    if type(handler) is not logging.StreamHandler or handler.filters:
        return False
    if handler.stream is not sys.stderr or handler.level > _INFO:
        return False
    formatter = handler.formatter
    return (
        type(formatter) is logging.Formatter
        and formatter._fmt == expected
        and formatter.datefmt is None
        and formatter.converter is time.localtime
    )
