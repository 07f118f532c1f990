"""On-disk cache of compiled artifacts, keyed by the module's sha256 and the engine fingerprint.

Rules:
- The key is ``sha256(wasm bytes)`` + ``sha256(engine fingerprint)``: a new wasmtime version, other
  engine settings or another CPU never read an entry compiled for something else.
- An entry is ``MAGIC | sha256(fingerprint) | sha256(payload) | payload``. Every read re-hashes the
  payload: a truncated, bit-flipped or foreign file is detected *before* it reaches wasmtime's
  deserialiser (which must only ever see bytes this cache wrote), then removed and recompiled.
- Writes go to a temporary file in the same directory and are renamed into place, so a crash
  never leaves a torn entry and concurrent writers (worker processes) never see one.
- The cache directory is created private (0700): whoever can write it can make us run native code.
- A cache that cannot be used (read-only disk, no home) is bypassed, never fatal: compiling again
  is always correct, only slower.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ArtifactCache", "CacheConfig", "CacheStats", "default_cache_dir"]

MAGIC = b"WGATE\x00C1"
_HEADER = len(MAGIC) + 32 + 32


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
    write_errors: int = 0


class ArtifactCache:
    """A directory of verified compiled artifacts for one engine fingerprint."""

    def __init__(self, directory: Path, fingerprint: str) -> None:
        self.directory = directory
        self._fp_digest = hashlib.sha256(fingerprint.encode()).digest()
        self.stats = CacheStats()

    def path_for(self, wasm_sha256: str, kind: str) -> Path:
        return self.directory / f"{wasm_sha256}-{self._fp_digest.hex()[:16]}.{kind}.cwasm"

    def get(self, wasm_sha256: str, kind: str) -> bytes | None:
        """The verified payload for this module, or None (miss, or an entry that failed checks)."""
        path = self.path_for(wasm_sha256, kind)
        try:
            data = path.read_bytes()
        except OSError:
            self.stats.misses += 1
            return None
        payload = self._verify(data)
        if payload is None:
            self.reject(wasm_sha256, kind)
            return None
        self.stats.hits += 1
        return payload

    def reject(self, wasm_sha256: str, kind: str) -> None:
        """Forget an entry that failed verification or deserialisation."""
        self.stats.rejected += 1
        with contextlib.suppress(OSError):
            self.path_for(wasm_sha256, kind).unlink()

    def put(self, wasm_sha256: str, kind: str, payload: bytes) -> None:
        path = self.path_for(wasm_sha256, kind)
        blob = MAGIC + self._fp_digest + hashlib.sha256(payload).digest() + payload
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".cwasm")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(blob)
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError:
            self.stats.write_errors += 1

    def _verify(self, data: bytes) -> bytes | None:
        if len(data) < _HEADER or not data.startswith(MAGIC):
            return None
        fp = data[len(MAGIC) : len(MAGIC) + 32]
        digest = data[len(MAGIC) + 32 : _HEADER]
        payload = data[_HEADER:]
        if fp != self._fp_digest or hashlib.sha256(payload).digest() != digest:
            return None
        return payload
