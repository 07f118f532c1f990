"""Even connections across ``wasmgate serve --workers`` processes: a worker holding more than its
share hands a new connection to the least loaded one before reading a byte of it.

Why: each worker serves the connections it accepted, for as long as they stay open. The kernel
spreads new connections over the workers' ``SO_REUSEPORT`` sockets by a hash, so a burst of
keep-alive clients lands unevenly (32 connections split 11/21 as often as not), and the busier
worker's clients wait behind twice as many others: measured, a p99 latency half as high again as
with an even split. (A multi-threaded server such as ``wasmtime serve`` has one pool of threads
for all its connections and no such split.)

Rules:
- A table shared by the workers (``WorkerTable``: a file in the server's private run directory,
  mapped by each) has one row per worker: its process id, the connections it holds (-1: not
  serving) and, per other worker, how many connections it adopted from that one. Every row is
  written by its own worker only (the master marks a dead worker's row not serving), so no
  lock: a reader may see a count a moment old, never a torn one (aligned 8-byte words).
- When a plain-HTTP connection is accepted, its worker asks ``Balancer.hand_off``: if it would
  hold at least two more than the least loaded serving worker, counting the connections it has
  sent that one and that one has not adopted yet, the socket goes to that worker (its file
  descriptor over a Unix datagram socket, ``SCM_RIGHTS``) and the sender closes its own
  descriptor (no shutdown: the connection lives on in the receiver). Nothing of it has been
  read: the receiver reads the request from the kernel's buffer as if it had accepted it. A
  connection is handed over at most once (an adopted one is never sent on). TLS connections are
  not handed over (they are served where accepted).
- If the handover cannot be made (the other worker is gone, its queue is full, the path is too
  long for a Unix socket), the connection stays with the worker that accepted it: balancing
  only ever moves a connection to a worker that has taken it.
- The receiving socket lives in the run directory (mode 0700, as ``tempfile.mkdtemp`` makes it):
  only the server's own user can send to it. The receiver adopts each descriptor that is a
  stream socket as a connection of its uvicorn server (the same protocol, limits and shutdown
  as its own); anything else is closed.
- A worker that stops marks itself not serving first, so no more connections come to it; ones
  already on their way are adopted and served as any accepted just before a stop.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import logging
import mmap
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .metrics import GatewayMetrics

__all__ = ["Balancer", "WorkerTable", "least_loaded"]

log = logging.getLogger("wasmgate.gateway")

TABLE_NAME = "workers"
NOT_SERVING = -1
_PID, _HELD, _ADOPTED = 0, 1, 2  # a row: pid, held, adopted-from[workers]
_UNIX_PATH_MAX = 107  # sun_path holds 108 bytes with the NUL


class WorkerTable:
    """The shared table of ``workers`` rows (see the rules), in the file ``path``."""

    def __init__(self, path: Path, workers: int) -> None:
        self.workers = workers
        self.width = _ADOPTED + workers
        size = 8 * workers * self.width
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < size:
                os.ftruncate(fd, size)
            self._map = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        self.words = memoryview(self._map).cast("q")

    @classmethod
    def create(cls, run_dir: Path, workers: int) -> WorkerTable:
        """The master's table: every worker not serving yet."""
        table = cls(run_dir / TABLE_NAME, workers)
        for index in range(workers):
            table.clear(index)
        return table

    def clear(self, index: int) -> None:
        """Row ``index`` emptied and marked not serving (a worker starting, or gone)."""
        row = index * self.width
        self.words[row : row + self.width] = array.array("q", [0] * self.width)
        self.words[row + _HELD] = NOT_SERVING

    def pid(self, index: int) -> int:
        return int(self.words[index * self.width + _PID])

    def held(self, index: int) -> int:
        return int(self.words[index * self.width + _HELD])

    def adopted(self, index: int, sender: int) -> int:
        """How many connections worker ``index`` adopted from worker ``sender``."""
        return int(self.words[index * self.width + _ADOPTED + sender])

    def close(self) -> None:
        self.words.release()
        with contextlib.suppress(BufferError):
            self._map.close()


def least_loaded(held: list[int], me: int) -> int | None:
    """The worker to hand a new connection of worker ``me`` to, or None to keep it: the least
    loaded serving worker (``held`` -1: not serving; counting what is on its way to it), if
    ``me`` would hold at least two more with the connection than it does."""
    mine = held[me] + 1
    best: int | None = None
    for index, count in enumerate(held):
        if index != me and count >= 0 and (best is None or count < held[best]):
            best = index
    if best is None or mine - held[best] < 2:
        return None
    return best


def socket_path(run_dir: Path, index: int) -> Path:
    return run_dir / f"worker-{index}.sock"


class Balancer:
    """Worker ``index``'s side of the table: its counts, its handovers and its adoptions."""

    def __init__(
        self, run_dir: Path, index: int, workers: int, metrics: GatewayMetrics | None = None
    ) -> None:
        self.index = index
        self._metrics = metrics
        self.table = WorkerTable(run_dir / TABLE_NAME, workers)
        self._row = index * self.table.width
        self._paths = [str(socket_path(run_dir, i)) for i in range(workers)]
        self._sent: dict[int, tuple[int, int]] = {}  # worker -> (its pid, connections sent)
        self._name = index.to_bytes(4, "little")  # a handover's payload: who sent it
        self._held = 0
        self.handed_over = 0  # connections sent to another worker
        self.adopted = 0  # connections taken from another worker
        self._inbox: socket.socket | None = None
        self._outbox: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._protocol: Callable[[], Any] | None = None
        self._adopting: set[asyncio.Task[Any]] = set()

    # --- serving -------------------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop, protocol: Callable[[], Any]) -> bool:
        """Open this worker's inbox on ``loop`` and mark it serving: each connection received is
        served by a ``protocol()`` (what its server makes for a connection it accepts), marked
        adopted. False (and no balancing for this worker) if the inbox cannot be made."""
        path = self._paths[self.index]
        if len(os.fsencode(path)) > _UNIX_PATH_MAX:
            log.info("connection balancing off: the run directory's path is too long")
            return False
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # a previous worker's of this index
        inbox = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            inbox.bind(path)
            inbox.setblocking(False)
            outbox = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            outbox.setblocking(False)
        except OSError as e:
            inbox.close()
            log.info("connection balancing off: %s", e.strerror)
            return False
        self._inbox, self._outbox, self._loop, self._protocol = inbox, outbox, loop, protocol
        loop.add_reader(inbox.fileno(), self._receive)
        words, row = self.table.words, self._row
        for sender in range(self.table.workers):
            words[row + _ADOPTED + sender] = 0
        words[row + _PID] = os.getpid()
        words[row + _HELD] = self._held
        return True

    def leave(self) -> None:
        """Stop taking connections (the worker is stopping); the inbox stays open for those
        already on their way."""
        self.table.words[self._row + _HELD] = NOT_SERVING
        if self._outbox is not None:
            log.info(
                "connections handed to other workers: %d, taken from them: %d",
                self.handed_over,
                self.adopted,
            )
        outbox, self._outbox = self._outbox, None
        if outbox is not None:
            outbox.close()

    def close(self) -> None:
        self.leave()
        inbox, self._inbox = self._inbox, None
        if inbox is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(inbox.fileno())
            inbox.close()
            with contextlib.suppress(OSError):
                os.unlink(self._paths[self.index])
        self.table.close()

    # --- counting ------------------------------------------------------------------------------

    def opened(self) -> None:
        self._held += 1
        if self._outbox is not None:
            self.table.words[self._row + _HELD] = self._held

    def closed(self) -> None:
        self._held -= 1
        if self._outbox is not None:
            self.table.words[self._row + _HELD] = self._held

    # --- handing over --------------------------------------------------------------------------

    def hand_off(self, transport: asyncio.BaseTransport) -> bool:
        """Send the new connection of ``transport`` to a less loaded worker (see the rules) and
        close this worker's hold on it. False: keep it (nothing was done)."""
        outbox = self._outbox
        if outbox is None:
            return False
        table, me = self.table, self.index
        held = []
        for index in range(table.workers):
            count = table.held(index)
            if count >= 0 and index != me:
                pid, sent = self._sent.get(index, (0, 0))
                if pid == table.pid(index):  # on its way: sent, not adopted yet
                    count += max(0, sent - table.adopted(index, me))
            held.append(count)
        held[me] = self._held
        target = least_loaded(held, me)
        if target is None:
            return False
        sock = transport.get_extra_info("socket")
        if sock is None:
            return False
        try:
            # (socket.send_fds drops its address argument: sendmsg itself.)
            rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [sock.fileno()]))]
            outbox.sendmsg([self._name], rights, 0, self._paths[target])
        except OSError:  # gone, not yet there, or its queue is full: keep the connection
            return False
        pid, sent = self._sent.get(target, (0, 0))
        target_pid = table.pid(target)
        self._sent[target] = (target_pid, sent + 1 if pid == target_pid else 1)
        self.handed_over += 1
        if self._metrics is not None:
            self._metrics.connection_moved("handed")
        transport.close()  # closes this process's descriptor only: no shutdown, no reset
        return True

    def _receive(self) -> None:
        inbox = self._inbox
        if inbox is None:
            return
        while True:
            try:
                payload, fds, _, _ = socket.recv_fds(inbox, 16, 4)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                log.warning("connection balancing: receiving failed: %s", e.strerror)
                return
            sender = int.from_bytes(payload[:4], "little")
            for fd in fds:
                self._take(fd, sender if len(payload) == 4 else None)

    def _take(self, fd: int, sender: int | None) -> None:
        try:
            sock = socket.socket(fileno=fd)
        except OSError:
            os.close(fd)
            return
        if sock.type != socket.SOCK_STREAM or sock.family not in (
            socket.AF_INET,
            socket.AF_INET6,
        ):
            sock.close()
            return
        # Counted as held before it is counted as arrived: a sender reading between the two
        # sees one too many here (and keeps a connection), never one too few.
        self.opened()
        if sender is not None and 0 <= sender < self.table.workers:
            self.table.words[self._row + _ADOPTED + sender] += 1
        self.adopted += 1
        if self._metrics is not None:
            self._metrics.connection_moved("adopted")
        sock.setblocking(False)
        assert self._loop is not None
        task = self._loop.create_task(self._loop.connect_accepted_socket(self._adopted, sock))
        self._adopting.add(task)
        task.add_done_callback(lambda done: self._served(done, sock))

    def _adopted(self) -> Any:
        assert self._protocol is not None
        protocol = self._protocol()
        protocol.adopted = True  # counted already; never handed on
        return protocol

    def _served(self, task: asyncio.Task[Any], sock: socket.socket) -> None:
        self._adopting.discard(task)
        if task.cancelled() or task.exception() is not None:  # it could not be served
            self.closed()
            sock.close()
