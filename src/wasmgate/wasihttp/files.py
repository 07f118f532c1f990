"""``wasi:filesystem``: the granted folders (``capabilities.DirGrant``: a route's volumes, an
embedded component's or a command's ``dirs``), seen by a component.

Rules:
- ``preopens.get-directories`` lists the granted folders (guest path, host folder), each opened
  for this run; with none it is empty and no descriptor can exist.
- A guest can never leave a volume: paths are relative to a descriptor it holds; an absolute
  path or a ``..`` component is ``not-permitted``; symbolic links are never followed (a link is
  ``loop`` to open and its own entry to ``stat-at``), so none can point out. Every folder on the
  way is opened relative to the one before it (``dir_fd``), never by a joined host path.
- A read-only volume grants reading and listing only: opening for write, creating, truncating,
  writing, resizing, renaming, deleting, making folders or changing times is ``read-only``.
  Hard and symbolic links cannot be made (``not-permitted``).
- A host ``OSError`` maps to the ``error-code`` of its errno (``ERRNO``; others ``io``).
- Every descriptor is closed by the host when the request ends, dropped or not
  (``RequestState.close``), and a request holds at most ``MAX_FILES`` open at once (one more is
  ``insufficient-memory``, as the spec has no code for it): a guest cannot exhaust the host's
  file descriptors.
- Reads return at most ``READ_CHUNK`` bytes per call, as for the request body.
"""

from __future__ import annotations

import errno
import os
import stat as st_mode
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from . import resources as r
from .resources import READ_CHUNK, RequestState

__all__ = ["ERRNO", "IMPLEMENTATIONS", "Descriptor", "DirectoryEntryStream"]

ERRNO = {
    errno.EACCES: "access",
    errno.EAGAIN: "would-block",
    errno.EALREADY: "already",
    errno.EBADF: "bad-descriptor",
    errno.EBUSY: "busy",
    errno.EDEADLK: "deadlock",
    errno.EDQUOT: "quota",
    errno.EEXIST: "exist",
    errno.EFBIG: "file-too-large",
    errno.EILSEQ: "illegal-byte-sequence",
    errno.EINPROGRESS: "in-progress",
    errno.EINTR: "interrupted",
    errno.EINVAL: "invalid",
    errno.EIO: "io",
    errno.EISDIR: "is-directory",
    errno.ELOOP: "loop",
    errno.EMLINK: "too-many-links",
    errno.EMSGSIZE: "message-size",
    errno.ENAMETOOLONG: "name-too-long",
    errno.ENODEV: "no-device",
    errno.ENOENT: "no-entry",
    errno.ENOLCK: "no-lock",
    errno.ENOMEM: "insufficient-memory",
    errno.ENOSPC: "insufficient-space",
    errno.ENOTDIR: "not-directory",
    errno.ENOTEMPTY: "not-empty",
    errno.ENOTSUP: "unsupported",
    errno.ENOTTY: "no-tty",
    errno.ENXIO: "no-such-device",
    errno.EOVERFLOW: "overflow",
    errno.EPERM: "not-permitted",
    errno.EPIPE: "pipe",
    errno.EROFS: "read-only",
    errno.ESPIPE: "invalid-seek",
    errno.ETXTBSY: "text-file-busy",
    errno.EXDEV: "cross-device",
}
MAX_FILES = 256
_BASE = os.O_CLOEXEC | os.O_NOFOLLOW
_DIR = os.O_RDONLY | os.O_DIRECTORY | _BASE


class _Refused(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def _err(code: str) -> tuple[str, str]:
    return ("err", code)


def _os_error(e: OSError) -> tuple[str, str]:
    return ("err", ERRNO.get(e.errno or 0, "io"))


def _kind(mode: int) -> str:
    if st_mode.S_ISDIR(mode):
        return "directory"
    if st_mode.S_ISREG(mode):
        return "regular-file"
    if st_mode.S_ISLNK(mode):
        return "symbolic-link"
    if st_mode.S_ISFIFO(mode):
        return "fifo"
    if st_mode.S_ISSOCK(mode):
        return "socket"
    if st_mode.S_ISCHR(mode):
        return "character-device"
    if st_mode.S_ISBLK(mode):
        return "block-device"
    return "unknown"


def _datetime(ns: int) -> dict[str, int]:
    return {"seconds": ns // 1_000_000_000, "nanoseconds": ns % 1_000_000_000}


def _stat(s: os.stat_result) -> dict[str, Any]:
    return {
        "type": _kind(s.st_mode),
        "link-count": s.st_nlink,
        "size": s.st_size,
        "data-access-timestamp": _datetime(s.st_atime_ns),
        "data-modification-timestamp": _datetime(s.st_mtime_ns),
        "status-change-timestamp": _datetime(s.st_ctime_ns),
    }


class Descriptor(r.Resource):
    """An open file or folder inside a volume."""

    TYPE = 401

    def __init__(self, fd: int, *, writable: bool, flags: frozenset[str]) -> None:
        self.fd: int | None = fd
        self.writable = writable  # the volume allows changes
        self.flags = flags

    def handle(self) -> int:
        if self.fd is None:
            raise _Refused("bad-descriptor")
        return self.fd

    def close(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)

    def dropped(self, state: RequestState) -> None:
        self.close()
        state.files.remove(self)

    def need_write(self) -> None:
        if not self.writable:
            raise _Refused("read-only")

    def resolve(self, path: str) -> tuple[int, str]:
        """(an fd of the folder holding the last component, that component): the caller closes
        the fd unless it is this descriptor's own. ``""`` names the folder itself."""
        if path.startswith("/"):
            raise _Refused("not-permitted")
        parts = [p for p in path.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise _Refused("not-permitted")
        base = self.handle()
        if not parts:
            return base, ""
        fd = base
        try:
            for part in parts[:-1]:
                nxt = os.open(part, _DIR, dir_fd=fd)
                if fd != base:
                    os.close(fd)
                fd = nxt
        except OSError:
            if fd != base:
                os.close(fd)
            raise
        return fd, parts[-1]


class DirectoryEntryStream(r.Resource):
    TYPE = 402

    def __init__(self, entries: list[dict[str, str]]) -> None:
        self.entries = entries
        self.pos = 0


class _FileInput(r.InputStream):
    """An input stream reading a file from an offset (the descriptor keeps the fd open)."""

    def __init__(self, desc: Descriptor, offset: int) -> None:
        super().__init__(b"")
        self.desc = desc
        self.offset = offset

    def read(self, n: int) -> tuple[str, Any]:
        try:
            chunk = os.pread(self.desc.handle(), min(n, READ_CHUNK), self.offset)
        except (OSError, _Refused) as e:
            message = str(e)
            return ("err", ("last-operation-failed", r.IoError(message)))
        if not chunk and n:
            return r.CLOSED
        self.offset += len(chunk)
        return ("ok", chunk)

    def skip(self, n: int) -> tuple[str, Any]:
        got = self.read(n)
        return got if got[0] == "err" else ("ok", len(got[1]))


def _at(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run a descriptor method, mapping refusals and OS errors to the error value."""

    def run(st: RequestState, *args: Any) -> Any:
        try:
            return fn(st, *args)
        except _Refused as e:
            return _err(e.code)
        except OSError as e:
            return _os_error(e)

    return run


def _within(desc: Descriptor, path: str, op: Callable[[int, str], Any]) -> Any:
    fd, name = desc.resolve(path)
    try:
        return op(fd, name or ".")
    finally:
        if fd != desc.fd:
            os.close(fd)


def _opened(st: RequestState, open_fd: Callable[[], int], writable: bool, flags: Any) -> Any:
    """A new descriptor, counted in the request's open files (closed when it ends)."""
    if len(st.files) >= MAX_FILES:
        raise _Refused("insufficient-memory")
    desc = Descriptor(open_fd(), writable=writable, flags=frozenset(flags))
    st.files.append(desc)
    return desc


def get_directories(st: RequestState) -> list[tuple[Descriptor, str]]:
    out = []
    for vol in st.volumes:
        # as Wasmtime: a folder is never open for "write"; a read-write one may be changed
        flags = {"read"} if vol.read_only else {"read", "mutate-directory"}
        desc = _opened(st, partial(os.open, vol.host, _DIR), not vol.read_only, flags)
        out.append((desc, vol.guest))
    return out


@_at
def read_via_stream(st: RequestState, d: Descriptor, offset: int) -> Any:
    d.handle()
    return ("ok", _FileInput(d, offset))


def _writer(st: RequestState, d: Descriptor, offset: int | None) -> Any:
    d.need_write()
    if "write" not in d.flags:
        raise _Refused("bad-descriptor")
    fd = d.handle()
    where = [offset]

    def sink(data: bytes) -> bool:
        pos = os.fstat(fd).st_size if where[0] is None else where[0]
        try:
            written = os.pwrite(fd, data, pos)
        except OSError:
            return False
        if where[0] is not None:
            where[0] = pos + written
        return written == len(data)

    return ("ok", r.OutputStream(sink, owner=d))


@_at
def write_via_stream(st: RequestState, d: Descriptor, offset: int) -> Any:
    return _writer(st, d, offset)


@_at
def append_via_stream(st: RequestState, d: Descriptor) -> Any:
    return _writer(st, d, None)


@_at
def advise(st: RequestState, d: Descriptor, offset: int, length: int, advice: str) -> Any:
    d.handle()
    return ("ok", None)


@_at
def sync(st: RequestState, d: Descriptor) -> Any:
    if d.writable and "write" in d.flags:
        os.fsync(d.handle())
    return ("ok", None)


@_at
def get_flags(st: RequestState, d: Descriptor) -> Any:
    d.handle()
    return ("ok", d.flags)


@_at
def get_type(st: RequestState, d: Descriptor) -> Any:
    return ("ok", _kind(os.fstat(d.handle()).st_mode))


@_at
def set_size(st: RequestState, d: Descriptor, size: int) -> Any:
    d.need_write()
    os.ftruncate(d.handle(), size)
    return ("ok", None)


def _times(old: os.stat_result, atime: Any, mtime: Any) -> tuple[int, int]:
    def pick(value: Any, current: int) -> int:
        tag, payload = value
        if tag == "no-change":
            return current
        if tag == "now":
            return time.time_ns()
        return int(payload["seconds"]) * 1_000_000_000 + int(payload["nanoseconds"])

    return pick(atime, old.st_atime_ns), pick(mtime, old.st_mtime_ns)


@_at
def set_times(st: RequestState, d: Descriptor, atime: Any, mtime: Any) -> Any:
    d.need_write()
    fd = d.handle()
    os.utime(fd, ns=_times(os.fstat(fd), atime, mtime))
    return ("ok", None)


@_at
def read(st: RequestState, d: Descriptor, length: int, offset: int) -> Any:
    data = os.pread(d.handle(), min(length, READ_CHUNK), offset)
    return ("ok", (data, len(data) < min(length, READ_CHUNK)))


@_at
def write(st: RequestState, d: Descriptor, data: bytes, offset: int) -> Any:
    d.need_write()
    if "write" not in d.flags:
        raise _Refused("bad-descriptor")
    return ("ok", os.pwrite(d.handle(), data, offset))


@_at
def read_directory(st: RequestState, d: Descriptor) -> Any:
    entries = []
    with os.scandir(d.handle()) as it:
        for entry in it:
            kind = _kind(entry.stat(follow_symlinks=False).st_mode)
            entries.append({"type": kind, "name": entry.name})
    entries.sort(key=lambda e: e["name"])
    return ("ok", DirectoryEntryStream(entries))


def read_directory_entry(st: RequestState, s: DirectoryEntryStream) -> Any:
    if s.pos >= len(s.entries):
        return ("ok", None)
    s.pos += 1
    return ("ok", s.entries[s.pos - 1])


@_at
def create_directory_at(st: RequestState, d: Descriptor, path: str) -> Any:
    d.need_write()
    _within(d, path, lambda fd, name: os.mkdir(name, dir_fd=fd))
    return ("ok", None)


@_at
def stat(st: RequestState, d: Descriptor) -> Any:
    return ("ok", _stat(os.fstat(d.handle())))


@_at
def stat_at(st: RequestState, d: Descriptor, flags: Any, path: str) -> Any:
    s = _within(d, path, lambda fd, name: os.stat(name, dir_fd=fd, follow_symlinks=False))
    return ("ok", _stat(s))


@_at
def set_times_at(
    st: RequestState, d: Descriptor, flags: Any, path: str, atime: Any, mtime: Any
) -> Any:
    d.need_write()

    def op(fd: int, name: str) -> None:
        old = os.stat(name, dir_fd=fd, follow_symlinks=False)
        os.utime(name, ns=_times(old, atime, mtime), dir_fd=fd, follow_symlinks=False)

    _within(d, path, op)
    return ("ok", None)


def link_at(st: RequestState, *args: Any) -> Any:
    return _err("not-permitted")


def symlink_at(st: RequestState, *args: Any) -> Any:
    return _err("not-permitted")


_OPEN_FLAGS = {"create": os.O_CREAT, "directory": os.O_DIRECTORY, "exclusive": os.O_EXCL}


@_at
def open_at(
    st: RequestState, d: Descriptor, path_flags: Any, path: str, open_flags: Any, flags: Any
) -> Any:
    wants_write = "write" in flags or "mutate-directory" in flags
    changes = wants_write or "create" in open_flags or "truncate" in open_flags
    if changes:
        d.need_write()
    mode = os.O_RDWR if "read" in flags and "write" in flags else os.O_RDONLY
    if "write" in flags and "read" not in flags:
        mode = os.O_WRONLY
    os_flags = mode | _BASE
    for name, bit in _OPEN_FLAGS.items():
        if name in open_flags:
            os_flags |= bit
    if "truncate" in open_flags:
        os_flags |= os.O_TRUNC

    def open_fd() -> int:
        return int(_within(d, path, lambda dfd, name: os.open(name, os_flags, 0o644, dir_fd=dfd)))

    return ("ok", _opened(st, open_fd, d.writable, flags))


@_at
def readlink_at(st: RequestState, d: Descriptor, path: str) -> Any:
    return ("ok", _within(d, path, lambda fd, name: os.readlink(name, dir_fd=fd)))


@_at
def remove_directory_at(st: RequestState, d: Descriptor, path: str) -> Any:
    d.need_write()
    _within(d, path, lambda fd, name: os.rmdir(name, dir_fd=fd))
    return ("ok", None)


@_at
def unlink_file_at(st: RequestState, d: Descriptor, path: str) -> Any:
    d.need_write()
    _within(d, path, lambda fd, name: os.unlink(name, dir_fd=fd))
    return ("ok", None)


@_at
def rename_at(st: RequestState, d: Descriptor, old: str, new_d: Descriptor, new: str) -> Any:
    d.need_write()
    new_d.need_write()

    def op(old_fd: int, old_name: str) -> None:
        _within(
            new_d,
            new,
            lambda new_fd, new_name: os.rename(
                old_name, new_name, src_dir_fd=old_fd, dst_dir_fd=new_fd
            ),
        )

    _within(d, old, op)
    return ("ok", None)


def is_same_object(st: RequestState, d: Descriptor, other: Descriptor) -> bool:
    try:
        a, b = os.fstat(d.handle()), os.fstat(other.handle())
    except (OSError, _Refused):
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _hash(s: os.stat_result) -> dict[str, int]:
    return {"lower": s.st_ino & (2**64 - 1), "upper": s.st_dev & (2**64 - 1)}


@_at
def metadata_hash(st: RequestState, d: Descriptor) -> Any:
    return ("ok", _hash(os.fstat(d.handle())))


@_at
def metadata_hash_at(st: RequestState, d: Descriptor, flags: Any, path: str) -> Any:
    s = _within(d, path, lambda fd, name: os.stat(name, dir_fd=fd, follow_symlinks=False))
    return ("ok", _hash(s))


def filesystem_error_code(st: RequestState, err: r.IoError) -> Any:
    return None


IMPLEMENTATIONS: dict[str, dict[str, Callable[..., Any]]] = {
    "wasi:filesystem/preopens": {"get-directories": get_directories},
    "wasi:filesystem/types": {
        "[method]descriptor.read-via-stream": read_via_stream,
        "[method]descriptor.write-via-stream": write_via_stream,
        "[method]descriptor.append-via-stream": append_via_stream,
        "[method]descriptor.advise": advise,
        "[method]descriptor.sync-data": sync,
        "[method]descriptor.get-flags": get_flags,
        "[method]descriptor.get-type": get_type,
        "[method]descriptor.set-size": set_size,
        "[method]descriptor.set-times": set_times,
        "[method]descriptor.read": read,
        "[method]descriptor.write": write,
        "[method]descriptor.read-directory": read_directory,
        "[method]descriptor.sync": sync,
        "[method]descriptor.create-directory-at": create_directory_at,
        "[method]descriptor.stat": stat,
        "[method]descriptor.stat-at": stat_at,
        "[method]descriptor.set-times-at": set_times_at,
        "[method]descriptor.link-at": link_at,
        "[method]descriptor.open-at": open_at,
        "[method]descriptor.readlink-at": readlink_at,
        "[method]descriptor.remove-directory-at": remove_directory_at,
        "[method]descriptor.rename-at": rename_at,
        "[method]descriptor.symlink-at": symlink_at,
        "[method]descriptor.unlink-file-at": unlink_file_at,
        "[method]descriptor.is-same-object": is_same_object,
        "[method]descriptor.metadata-hash": metadata_hash,
        "[method]descriptor.metadata-hash-at": metadata_hash_at,
        "[method]directory-entry-stream.read-directory-entry": read_directory_entry,
        "filesystem-error-code": filesystem_error_code,
    },
}
