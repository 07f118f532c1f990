"""On-disk cache of compiled artifacts, keyed by the module's sha256 and the engine fingerprint.

Rules:
- The key is ``sha256(wasm bytes)`` + ``sha256(engine fingerprint, entry format)``: a new wasmtime
  version, other engine settings, another CPU or another entry format never read an entry
  written for something else.
- An entry is two files: ``<key>.<kind>.cwasm``, the artifact exactly as wasmtime serialised it
  (so wasmtime maps it from the file: ``deserialize_file``, nothing copied through Python), and
  ``<key>.<kind>.seal`` beside it: ``SEAL_MAGIC | sha256(fingerprint) | sha256(artifact) |
  identity of the artifact file | when the seal was made``. The identity is what the file system
  changes whenever the file does: device, inode, size, mtime and ctime (ctime cannot be set back
  by anyone but the kernel's clock).
- Trusting an entry (``open_artifact``). The artifact is opened once, and wasmtime is given that
  very file (``/proc/self/fd/N`` on Linux), so what was checked is what is mapped. It is trusted
  at the cost of a few system calls when (1) the cache directory and the artifact belong to this
  user and nobody else can write them, and (2) the seal names this fingerprint and the file's
  identity is the sealed one, and (3) the seal is not *racy*: it was made at least ``RACY_NS``
  after the file last changed. Otherwise the whole artifact is hashed and compared with the
  sealed sha256: a match is trusted (and sealed again with the identity it has now, so the next
  read is quick: an entry copied elsewhere, e.g. by the container's entry point, is hashed
  once); a mismatch, a missing or foreign seal, or anything that is not a regular file is
  rejected: both files removed, the module compiled again.
- Why this is enough. Whoever can write the cache directory can make us run native code, with
  or without hashes: a digest (keyed or not) stored beside the artifact in a directory the same
  user writes protects against nothing that user could not redo, and a key kept in that
  directory is as exposed as the artifact. So the boundary is the directory's permissions (made
  0700, and checked at every read: a directory or artifact others may write is never trusted
  by identity, only by its full hash, as before). Within it, what can go wrong is an accident:
  a torn or truncated file, a file rewritten in place or replaced, a foreign entry renamed into
  place. Each changes the identity (a rewrite moves ctime; a rename or copy brings another inode),
  and the racy rule covers a change made within the file system's timestamp granularity of the
  seal (as git does for its index). What is not detected without the full hash is damage below
  the file system (a failing disk flipping a bit that no write made), which the file system's own
  checks, not a cache, must catch; the same goes for the interpreter and the wasmtime library we
  load without hashing them.
- Writes go to temporary files in the same directory and are renamed into place (the artifact,
  then its seal), so a crash never leaves a torn entry and concurrent writers (worker processes)
  never see one; two writers racing on one key leave at worst a seal that does not match its
  artifact, which the next read rejects and rewrites.
- Module files are hashed once, not at every start (``path_digest`` / ``remember_path``): a memo
  per module path, ``paths/<sha256(path)>.memo``, holds the file's identity, when it was made and
  the sha256 of its bytes. The sha256 stays the key; the memo is used only when the file's
  identity is the recorded one, the memo is not racy, and both belong to this user and nobody
  else may write them. A module edited, replaced, copied or touched since is hashed again.
- The cache directory is created private (0700): whoever can write it can make us run native code.
- A cache that cannot be used (read-only disk, no home) is bypassed, never fatal: compiling again
  is always correct, only slower.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import stat
import struct
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "RACY_NS",
    "SEAL_MAGIC",
    "ArtifactCache",
    "CacheConfig",
    "CacheStats",
    "default_cache_dir",
]

ENTRY_FORMAT = 2  # part of every key: entries of the first format (one file) are never read
SEAL_MAGIC = b"WGATE\x00S2"
MEMO_MAGIC = b"WGATE\x00P1"
RACY_NS = 2_000_000_000  # coarsest file timestamp granularity we allow for (FAT: 2 s)
_IDENTITY = struct.Struct("<QQQqqq")  # dev, ino, size, mtime_ns, ctime_ns, sealed/recorded at
_SEAL_SIZE = len(SEAL_MAGIC) + 32 + 32 + _IDENTITY.size
_MEMO_SIZE = len(MEMO_MAGIC) + 32 + 1 + _IDENTITY.size
_KINDS: tuple[Literal["module"], Literal["component"]] = ("module", "component")
_PROC_FD = sys.platform.startswith("linux") and os.path.isdir("/proc/self/fd")


def default_cache_dir() -> Path:
    env = os.environ.get("WASMGATE_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "wasmgate"


@dataclass(frozen=True, slots=True)
class CacheConfig:
    """Where compiled artifacts are kept. ``directory=None`` means the default location
    (``$WASMGATE_CACHE_DIR``, else ``$XDG_CACHE_HOME/wasmgate``, else ``~/.cache/wasmgate``)."""

    enabled: bool = True
    directory: Path | None = None

    def open(self, fingerprint: str) -> ArtifactCache | None:
        """The cache for an engine with this ``fingerprint``, or None when disabled."""
        if not self.enabled:
            return None
        return ArtifactCache(self.directory or default_cache_dir(), fingerprint)


@dataclass(slots=True)
class CacheStats:
    hits: int = 0
    misses: int = 0
    rejected: int = 0
    write_errors: int = 0  # artifacts (or seals) that could not be written
    hashed: int = 0  # artifacts whose trust took a full hash (copied, racy, or not private)


def _identity(st: os.stat_result) -> tuple[int, int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _private(st: os.stat_result) -> bool:
    """Ours, and nobody else may write it (see the rules). Where there are no user ids to
    compare, nothing is: every artifact is then hashed in full."""
    geteuid = getattr(os, "geteuid", None)
    if geteuid is None:
        return False
    return bool(st.st_uid == geteuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


def _racy(st: os.stat_result, made_at_ns: int) -> bool:
    return made_at_ns - max(st.st_mtime_ns, st.st_ctime_ns) < RACY_NS


def _read_small(path: Path, size: int) -> tuple[bytes, os.stat_result] | None:
    """A small regular file's bytes (exactly ``size`` of them) and its stat, or None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size != size:
            return None
        data = os.read(fd, size + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    return (data, st) if len(data) == size else None


def _hash_fd(fd: int) -> bytes:
    import hashlib

    with open(fd, "rb", buffering=0, closefd=False) as f:
        f.seek(0)
        return hashlib.file_digest(f, "sha256").digest()


def _small_sha256(data: bytes) -> bytes:
    """sha256 of a few bytes (names, fingerprints), without importing hashlib: that loads OpenSSL,
    which a warm start, hashing nothing big, need not pay for. CPython's own sha256 is the one
    hashlib falls back to."""
    global _sha256_new
    if _sha256_new is None:
        for name in ("_sha256", "_sha2", "hashlib"):  # 3.11, 3.12+, anything else
            try:
                _sha256_new = importlib.import_module(name).sha256
                break
            except (ImportError, AttributeError):
                continue
    assert _sha256_new is not None
    digest: bytes = _sha256_new(data).digest()
    return digest


_sha256_new: Callable[[bytes], Any] | None = None


class ArtifactCache:
    """A directory of sealed compiled artifacts for one engine fingerprint."""

    def __init__(self, directory: Path, fingerprint: str) -> None:
        self.directory = directory
        self._fp_digest = _small_sha256(f"{fingerprint}|entry={ENTRY_FORMAT}".encode())
        self.stats = CacheStats()

    def path_for(self, wasm_sha256: str, kind: str) -> Path:
        return self.directory / f"{wasm_sha256}-{self._fp_digest.hex()[:16]}.{kind}.cwasm"

    def seal_for(self, wasm_sha256: str, kind: str) -> Path:
        return self.path_for(wasm_sha256, kind).with_suffix(".seal")

    # --- artifacts -----------------------------------------------------------------------

    @contextlib.contextmanager
    def open_artifact(self, wasm_sha256: str, kind: str) -> Iterator[str | None]:
        """A path to a trusted artifact for this module, for wasmtime's ``deserialize_file``
        while the block runs (on Linux the very file that was checked), or None: a miss, or an
        entry that failed the checks (then removed)."""
        path = self.path_for(wasm_sha256, kind)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0))
        except (FileNotFoundError, NotADirectoryError):
            self.stats.misses += 1
            yield None
            return
        except OSError:  # a symbolic link (O_NOFOLLOW), no permission...
            self.reject(wasm_sha256, kind)
            yield None
            return
        try:
            if not self._trusted(fd, wasm_sha256, kind):
                self.reject(wasm_sha256, kind)
                yield None
                return
            self.stats.hits += 1
            yield f"/proc/self/fd/{fd}" if _PROC_FD else str(path)
        finally:
            os.close(fd)

    def _trusted(self, fd: int, wasm_sha256: str, kind: str) -> bool:
        try:
            st = os.fstat(fd)
            dir_st = os.stat(self.directory)
        except OSError:
            return False
        if not stat.S_ISREG(st.st_mode):
            return False
        sealed = _read_small(self.seal_for(wasm_sha256, kind), _SEAL_SIZE)
        if sealed is None:
            return False
        seal, seal_st = sealed
        fields = self._parse_seal(seal)
        if fields is None:
            return False
        digest, identity, sealed_at = fields
        private = _private(st) and _private(dir_st) and _private(seal_st)
        if private and identity == _identity(st) and not _racy(st, sealed_at):
            return True
        # Copied, touched, rewritten, racy, or not private: only the full hash can tell.
        self.stats.hashed += 1
        try:
            if _hash_fd(fd) != digest:
                return False
        except OSError:
            return False
        if private:
            self._write_seal(wasm_sha256, kind, digest, st)
        return True

    def _parse_seal(self, seal: bytes) -> tuple[bytes, tuple[int, ...], int] | None:
        if not seal.startswith(SEAL_MAGIC):
            return None
        at = len(SEAL_MAGIC)
        if seal[at : at + 32] != self._fp_digest:
            return None
        digest = seal[at + 32 : at + 64]
        *identity, sealed_at = _IDENTITY.unpack_from(seal, at + 64)
        return digest, tuple(identity), sealed_at

    def reject(self, wasm_sha256: str, kind: str) -> None:
        """Forget an entry that failed verification or deserialisation."""
        self.stats.rejected += 1
        with contextlib.suppress(OSError):
            self.path_for(wasm_sha256, kind).unlink()
        with contextlib.suppress(OSError):
            self.seal_for(wasm_sha256, kind).unlink()

    def put(self, wasm_sha256: str, kind: str, payload: bytes) -> None:
        """Store an artifact and seal it."""
        path = self.path_for(wasm_sha256, kind)
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._replace(path, payload)
            st = os.stat(path, follow_symlinks=False)
        except OSError:
            self.stats.write_errors += 1
            return
        import hashlib

        self._write_seal(wasm_sha256, kind, hashlib.sha256(payload).digest(), st)

    def _write_seal(self, wasm_sha256: str, kind: str, digest: bytes, st: os.stat_result) -> None:
        sealed_at = time.time_ns()  # after the stat: see the racy rule
        seal = SEAL_MAGIC + self._fp_digest + digest + _IDENTITY.pack(*_identity(st), sealed_at)
        try:
            self._replace(self.seal_for(wasm_sha256, kind), seal)
        except OSError:
            self.stats.write_errors += 1

    def _replace(self, path: Path, data: bytes) -> None:
        """Write ``path`` whole or not at all (a temporary file renamed into place)."""
        import tempfile

        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    # --- module files: their sha256, remembered by identity -------------------------------------

    def _memo_path(self, module: Path) -> Path:
        name = _small_sha256(os.fsencode(os.path.abspath(module))).hex()[:32]
        return self.directory / "paths" / f"{name}.memo"

    def path_digest(self, module: Path) -> tuple[str, Literal["module", "component"]] | None:
        """``(sha256 hex, kind)`` of the module file at ``module`` as remembered, when the file
        is still the one that was hashed (see the rules); None otherwise."""
        memo_path = self._memo_path(module)
        got = _read_small(memo_path, _MEMO_SIZE)
        if got is None:
            return None
        memo, memo_st = got
        try:
            st = os.stat(module)
            dir_st = os.stat(memo_path.parent)
        except OSError:
            return None
        if not (memo.startswith(MEMO_MAGIC) and _private(memo_st) and _private(dir_st)):
            return None
        at = len(MEMO_MAGIC)
        digest = memo[at : at + 32]
        kind_index = memo[at + 32]
        *identity, recorded_at = _IDENTITY.unpack_from(memo, at + 33)
        if kind_index >= len(_KINDS) or tuple(identity) != _identity(st):
            return None
        if not stat.S_ISREG(st.st_mode) or _racy(st, recorded_at):
            return None
        return digest.hex(), _KINDS[kind_index]

    def remember_path(self, module: Path, st: os.stat_result, wasm_sha256: str, kind: str) -> None:
        """Remember that the file ``module``, as ``st`` describes it, hashes to ``wasm_sha256``.
        ``st`` must come from the open file the bytes were read from, taken before reading
        them. A file changed within ``RACY_NS`` is not remembered (it may still be changing)."""
        recorded_at = time.time_ns()
        if kind not in _KINDS or _racy(st, recorded_at):
            return
        memo = (
            MEMO_MAGIC
            + bytes.fromhex(wasm_sha256)
            + bytes([_KINDS.index(kind)])
            + _IDENTITY.pack(*_identity(st), recorded_at)
        )
        path = self._memo_path(module)
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            path.parent.mkdir(mode=0o700, exist_ok=True)
            self._replace(path, memo)
        except OSError:
            pass  # only a memo: the module is hashed again next time
