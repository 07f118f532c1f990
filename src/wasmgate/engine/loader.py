"""Loading guests: bytes or files in, a compiled core module or component out.

Rules:
- The kind of input is decided by its content, never by its file name: ``\\0asm`` + version 1 is a
  core module, ``\\0asm`` + layer 1 is a component, an ELF image is a precompiled artifact, and
  UTF-8 text that starts (after whitespace and comments) with ``(`` is WAT. Anything else is
  refused with one line saying what was expected.
- Precompiled artifacts are native code: deserialising one that was not produced by this engine
  for this machine is unsafe, so they load only when the caller says ``allow_precompiled``.
- Compilation goes through the ``ArtifactCache`` when one is given. A cached entry that wasmtime
  refuses is dropped and the module recompiled: the cache can cost time, never correctness.
  A cached artifact is mapped by wasmtime from its file (``deserialize_file``), never read into
  Python; a module file that the cache remembers (same identity, see ``cache.py``) is not even
  read: its remembered sha256 finds the artifact.
- Error messages are one line: wasmtime's multi-line "Caused by" chains are folded.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import wasmtime

from ..errors import ArtifactError, LoadError
from .cache import ArtifactCache, CacheConfig
from .engine import EngineHandle, EngineSettings, get_engine
from .outcome import fold_error

if TYPE_CHECKING:  # the component types load only when a component does (start-up)
    from wasmtime import component as cm

__all__ = ["Kind", "LoadedGuest", "detect_kind", "load", "load_guest", "read_guest_bytes"]

Kind = Literal["module", "component"]

_CORE_VERSION = b"\x01\x00\x00\x00"
_COMPONENT_LAYER = b"\x0d\x00\x01\x00"
_WAT_START = re.compile(rb"\A(?:\s+|;;[^\n]*\n?|\(;.*?;\))*\(", re.S)


@dataclass(frozen=True, slots=True)
class LoadedGuest:
    """A compiled guest, ready to instantiate any number of times."""

    name: str
    kind: Kind
    sha256: str
    module: wasmtime.Module | None
    component: cm.Component | None
    engine: EngineHandle
    precompiled: bool = False
    cache_hit: bool = False

    def core(self) -> wasmtime.Module:
        if self.module is None:
            raise LoadError(f"{self.name}: is a component, not a core module")
        return self.module

    def as_component(self) -> cm.Component:
        if self.component is None:
            raise LoadError(f"{self.name}: is a core module, not a component")
        return self.component


def detect_kind(data: bytes) -> Literal["module", "component", "precompiled", "wat"]:
    """Classify guest bytes; raises ``LoadError`` for anything that is not a guest."""
    if data[:4] == b"\x00asm":
        version = data[4:8]
        if version == _CORE_VERSION:
            return "module"
        if version == _COMPONENT_LAYER:
            return "component"
        if len(version) < 4:
            raise LoadError("truncated WebAssembly binary (no version after the magic)")
        raise LoadError(f"unsupported WebAssembly binary version {version.hex()}")
    if data[:4] == b"\x7fELF":
        return "precompiled"
    if _WAT_START.match(data[:4096]):
        return "wat"
    raise LoadError(
        "not a WebAssembly module or component (expected the \\0asm magic, WAT text, "
        "or a precompiled artifact)"
    )


def read_guest_bytes(path: Path) -> bytes:
    return _read_guest_file(path)[0]


def _read_guest_file(path: Path) -> tuple[bytes, os.stat_result]:
    """The file's bytes, and its stat taken on the open file before reading them."""
    try:
        with path.open("rb") as f:
            st = os.fstat(f.fileno())
            return f.read(), st
    except FileNotFoundError:
        raise LoadError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise LoadError(f"{path}: is a directory, not a module") from None
    except OSError as e:
        raise LoadError(f"{path}: cannot read: {e.strerror}") from None


def load_guest(
    source: Path | bytes,
    engine: EngineHandle,
    *,
    cache: ArtifactCache | None = None,
    allow_precompiled: bool = False,
    name: str | None = None,
) -> LoadedGuest:
    """Compile (or fetch from ``cache``) a guest given as a path or as bytes."""
    st: os.stat_result | None = None
    if isinstance(source, Path):
        name = name or source.name
        if cache is not None:
            known = cache.path_digest(source)
            if known is not None:
                loaded = _from_cache(cache, known[0], known[1], engine, name)
                if loaded is not None:
                    return loaded
        data, st = _read_guest_file(source)
    else:
        data = bytes(source)
        name = name or "<bytes>"
    try:
        kind = detect_kind(data)
    except LoadError as e:
        raise LoadError(f"{name}: {e}") from None
    if kind == "wat":
        st = None  # only binaries are remembered by path: the text is not what is hashed
        try:
            data = bytes(wasmtime.wat2wasm(data.decode("utf-8")))
        except UnicodeDecodeError:
            raise LoadError(f"{name}: WAT text is not valid UTF-8") from None
        except wasmtime.WasmtimeError as e:
            raise LoadError(f"{name}: invalid WAT: {fold_error(e)}") from None
        kind = detect_kind(data)
    if kind == "precompiled":
        return _load_precompiled(data, engine, name, allow_precompiled)
    assert kind in ("module", "component")
    import hashlib  # not on a warm start (cache.py: no OpenSSL for it)

    sha = hashlib.sha256(data).hexdigest()
    if cache is not None:
        if st is not None and isinstance(source, Path):
            cache.remember_path(source, st, sha, kind)
        loaded = _from_cache(cache, sha, kind, engine, name)
        if loaded is not None:
            return loaded
    try:
        if kind == "module":
            module = wasmtime.Module(engine.engine, data)
            loaded = LoadedGuest(name, kind, sha, module, None, engine)
        else:
            from wasmtime import component as cm

            comp = cm.Component(engine.engine, data)
            loaded = LoadedGuest(name, kind, sha, None, comp, engine)
    except wasmtime.WasmtimeError as e:
        raise LoadError(f"{name}: invalid {kind}: {fold_error(e)}") from None
    if cache is not None:
        artifact = loaded.module if loaded.module is not None else loaded.as_component()
        cache.put(sha, kind, bytes(artifact.serialize()))
    return loaded


def _from_cache(
    cache: ArtifactCache, sha: str, kind: Kind, engine: EngineHandle, name: str
) -> LoadedGuest | None:
    """The cached artifact, mapped from its file; None on a miss or a rejected entry."""
    with cache.open_artifact(sha, kind) as artifact:
        if artifact is None:
            return None
        try:
            if kind == "module":
                module = wasmtime.Module.deserialize_file(engine.engine, artifact)
                return LoadedGuest(name, kind, sha, module, None, engine, cache_hit=True)
            from wasmtime import component as cm

            comp = cm.Component.deserialize_file(engine.engine, artifact)
            return LoadedGuest(name, kind, sha, None, comp, engine, cache_hit=True)
        except (wasmtime.WasmtimeError, UnicodeEncodeError):
            pass  # refused by wasmtime (or a path it cannot be given): compile again
    cache.reject(sha, kind)
    return None


def _deserialize(
    payload: bytes, kind: Kind, engine: EngineHandle, name: str, sha: str, *, cache_hit: bool
) -> LoadedGuest:
    if kind == "module":
        module = wasmtime.Module.deserialize(engine.engine, payload)
        return LoadedGuest(name, kind, sha, module, None, engine, cache_hit=cache_hit)
    from wasmtime import component as cm

    comp = cm.Component.deserialize(engine.engine, payload)
    return LoadedGuest(name, kind, sha, None, comp, engine, cache_hit=cache_hit)


def _load_precompiled(
    data: bytes, engine: EngineHandle, name: str, allow_precompiled: bool
) -> LoadedGuest:
    if not allow_precompiled:
        raise ArtifactError(
            f"{name}: is a precompiled artifact; loading one runs native code, so it needs "
            "--allow-precompiled (use it only for artifacts you compiled yourself)"
        )
    import hashlib

    sha = hashlib.sha256(data).hexdigest()
    errors: list[str] = []
    for kind in ("module", "component"):
        try:
            loaded = _deserialize(data, kind, engine, name, sha, cache_hit=False)
        except wasmtime.WasmtimeError as e:
            errors.append(fold_error(e))
            continue
        return LoadedGuest(
            loaded.name, loaded.kind, sha, loaded.module, loaded.component, engine, precompiled=True
        )
    raise ArtifactError(f"{name}: precompiled artifact not usable by this engine: {errors[0]}")


def load(
    source: Path | str | bytes,
    *,
    settings: EngineSettings | None = None,
    cache: CacheConfig = CacheConfig(),
    allow_precompiled: bool = False,
) -> LoadedGuest:
    """Compile a guest (path, ``.wat`` text or bytes) through the shared engine and cache."""
    engine = get_engine(settings)
    if isinstance(source, str):
        source = Path(source)
    return load_guest(
        source,
        engine,
        cache=cache.open(engine.fingerprint),
        allow_precompiled=allow_precompiled,
    )
