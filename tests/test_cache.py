"""The compiled-artifact cache: hit, miss, corruption, foreign entries, unusable directories;
the seal that lets a warm start skip hashing, and the module-path memo."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from wasmgate.engine import ArtifactCache, get_engine, load_guest, loader
from wasmgate.engine import cache as cache_mod

Guest = Callable[[str], Path]


@pytest.fixture
def cache(tmp_path: Path) -> ArtifactCache:
    return ArtifactCache(tmp_path / "cache", get_engine().fingerprint)


def entries(cache: ArtifactCache) -> list[Path]:
    return sorted(cache.directory.glob("*.cwasm"))


def test_miss_then_hit(cache: ArtifactCache, guest: Guest) -> None:
    first = load_guest(guest("hello"), get_engine(), cache=cache)
    assert not first.cache_hit
    assert cache.stats.misses == 1
    assert len(entries(cache)) == 1
    second = load_guest(guest("hello"), get_engine(), cache=cache)
    assert second.cache_hit
    assert cache.stats.hits == 1
    assert second.sha256 == first.sha256


def test_cache_dir_is_private(cache: ArtifactCache, guest: Guest) -> None:
    load_guest(guest("hello"), get_engine(), cache=cache)
    assert cache.directory.stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) // 2],  # truncated
        lambda b: b[:-100] + bytes(100),  # tail zeroed
        lambda b: b[:200] + bytes([b[200] ^ 0xFF]) + b[201:],  # one flipped byte
        lambda b: b"garbage",
        lambda b: b"",
    ],
)
def test_corrupt_entry_is_recompiled(
    cache: ArtifactCache, guest: Guest, damage: Callable[[bytes], bytes]
) -> None:
    load_guest(guest("hello"), get_engine(), cache=cache)
    [entry] = entries(cache)
    entry.write_bytes(damage(entry.read_bytes()))
    again = load_guest(guest("hello"), get_engine(), cache=cache)
    assert not again.cache_hit
    assert cache.stats.rejected == 1
    # the entry was rewritten and is good again
    assert load_guest(guest("hello"), get_engine(), cache=cache).cache_hit


def test_foreign_entry_is_rejected(tmp_path: Path, guest: Guest) -> None:
    """An entry written for another engine (version/settings) is never handed to wasmtime."""
    other = ArtifactCache(tmp_path / "c", "wasmtime-0.0.0|other-cpu")
    mine = ArtifactCache(tmp_path / "c", get_engine().fingerprint)
    loaded = load_guest(guest("hello"), get_engine(), cache=other)
    [entry] = entries(other)
    entry.rename(mine.path_for(loaded.sha256, "module"))
    again = load_guest(guest("hello"), get_engine(), cache=mine)
    assert not again.cache_hit
    assert mine.stats.rejected == 1


def test_well_formed_entry_that_wasmtime_refuses(cache: ArtifactCache, guest: Guest) -> None:
    """A payload with a valid checksum but not a wasmtime artifact: dropped, recompiled."""
    loaded = load_guest(guest("hello"), get_engine(), cache=cache)
    cache.put(loaded.sha256, "module", b"\x7fELF not really an artifact")
    again = load_guest(guest("hello"), get_engine(), cache=cache)
    assert not again.cache_hit
    assert cache.stats.rejected == 1
    # rewritten with the real artifact
    assert entries(cache)[0].read_bytes().startswith(b"\x7fELF")
    assert load_guest(guest("hello"), get_engine(), cache=cache).cache_hit


def test_settings_are_part_of_the_key(tmp_path: Path, guest: Guest) -> None:
    from wasmgate.engine import EngineSettings

    plain = get_engine()
    fuel = get_engine(EngineSettings(consume_fuel=True))
    assert plain.fingerprint != fuel.fingerprint
    c1 = ArtifactCache(tmp_path / "c", plain.fingerprint)
    c2 = ArtifactCache(tmp_path / "c", fuel.fingerprint)
    load_guest(guest("hello"), plain, cache=c1)
    assert not load_guest(guest("hello"), fuel, cache=c2).cache_hit
    assert len(list((tmp_path / "c").glob("*.cwasm"))) == 2


def test_unwritable_cache_is_bypassed(tmp_path: Path, guest: Guest) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    cache = ArtifactCache(blocker / "cache", get_engine().fingerprint)
    loaded = load_guest(guest("hello"), get_engine(), cache=cache)
    assert loaded.kind == "module"
    assert cache.stats.write_errors == 1


def test_cli_uses_the_cache(wasmgate: Callable[..., object], guest: Guest, tmp_path: Path) -> None:
    cdir = tmp_path / "clicache"
    r1 = wasmgate("run", "--cache-dir", cdir, guest("hello"))  # type: ignore[operator]
    assert r1.returncode == 0  # type: ignore[attr-defined]
    assert len(list(cdir.glob("*.cwasm"))) == 1
    r2 = wasmgate("run", "--no-cache", "--cache-dir", tmp_path / "unused", guest("hello"))  # type: ignore[operator]
    assert r2.returncode == 0  # type: ignore[attr-defined]
    assert not (tmp_path / "unused").exists()


# --- the seal: trusted by identity, hashed when it cannot be -------------------------------------


@pytest.fixture
def settled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files count as settled at once (no racy window): the quick paths are taken."""
    monkeypatch.setattr(cache_mod, "RACY_NS", 0)


def test_a_warm_hit_is_not_hashed_nor_read_into_python(
    cache: ArtifactCache, guest: Guest, settled: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_guest(guest("hello"), get_engine(), cache=cache)
    load_guest(guest("hello"), get_engine(), cache=cache)
    hashed = cache.stats.hashed

    def no_bytes(*args: object) -> None:
        raise AssertionError("artifact copied through Python")

    monkeypatch.setattr(loader.wasmtime.Module, "deserialize", no_bytes)
    assert load_guest(guest("hello"), get_engine(), cache=cache).cache_hit
    assert cache.stats.hashed == hashed


def test_a_fresh_seal_is_racy_and_checked_in_full(cache: ArtifactCache, guest: Guest) -> None:
    """Just written: a rewrite within the timestamp granularity would keep the identity, so the
    whole artifact is hashed until the seal is old enough."""
    load_guest(guest("hello"), get_engine(), cache=cache)
    assert load_guest(guest("hello"), get_engine(), cache=cache).cache_hit
    assert cache.stats.hashed == 1


def test_a_rewrite_keeping_size_and_mtime_is_caught(
    cache: ArtifactCache, guest: Guest, settled: None
) -> None:
    load_guest(guest("hello"), get_engine(), cache=cache)
    [entry] = entries(cache)
    st = entry.stat()
    data = bytearray(entry.read_bytes())
    data[300] ^= 0xFF
    entry.write_bytes(bytes(data))
    os.utime(entry, ns=(st.st_atime_ns, st.st_mtime_ns))  # only ctime tells now
    assert not load_guest(guest("hello"), get_engine(), cache=cache).cache_hit
    assert cache.stats.rejected == 1


def test_a_change_within_the_timestamp_tick_is_caught(cache: ArtifactCache, guest: Guest) -> None:
    """A seal whose identity matches a damaged file, made within RACY_NS of the file's last
    change: the full hash decides."""
    loaded = load_guest(guest("hello"), get_engine(), cache=cache)
    [entry] = entries(cache)
    data = bytearray(entry.read_bytes())
    data[300] ^= 0xFF
    entry.write_bytes(bytes(data))
    seal = cache.seal_for(loaded.sha256, "module")
    head = seal.read_bytes()[: len(cache_mod.SEAL_MAGIC) + 64]
    st = entry.stat()
    ident = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    seal.write_bytes(head + cache_mod._IDENTITY.pack(*ident, st.st_ctime_ns + 1000))
    assert not load_guest(guest("hello"), get_engine(), cache=cache).cache_hit
    assert cache.stats.rejected == 1


def test_a_copied_entry_is_hashed_once_then_trusted(
    tmp_path: Path, guest: Guest, settled: None
) -> None:
    first = ArtifactCache(tmp_path / "a", get_engine().fingerprint)
    load_guest(guest("hello"), get_engine(), cache=first)
    shutil.copytree(tmp_path / "a", tmp_path / "b", copy_function=shutil.copy2)
    (tmp_path / "b").chmod(0o700)
    copy = ArtifactCache(tmp_path / "b", get_engine().fingerprint)
    assert load_guest(guest("hello"), get_engine(), cache=copy).cache_hit
    assert copy.stats.hashed == 1  # another inode: checked in full, then sealed again
    assert load_guest(guest("hello"), get_engine(), cache=copy).cache_hit
    assert copy.stats.hashed == 1


def test_an_artifact_others_may_write_is_always_hashed(
    cache: ArtifactCache, guest: Guest, settled: None
) -> None:
    load_guest(guest("hello"), get_engine(), cache=cache)
    [entry] = entries(cache)
    entry.chmod(0o664)
    for n in (1, 2):
        assert load_guest(guest("hello"), get_engine(), cache=cache).cache_hit
        assert cache.stats.hashed == n


@pytest.mark.parametrize("damage", ["no-seal", "foreign-seal", "short-seal", "symlink"])
def test_an_entry_without_its_own_seal_is_rejected(
    cache: ArtifactCache, guest: Guest, settled: None, damage: str, tmp_path: Path
) -> None:
    loaded = load_guest(guest("hello"), get_engine(), cache=cache)
    [entry] = entries(cache)
    seal = cache.seal_for(loaded.sha256, "module")
    if damage == "no-seal":
        seal.unlink()
    elif damage == "foreign-seal":
        other = ArtifactCache(cache.directory, "wasmtime-0.0.0|other-cpu")
        other.put(loaded.sha256, "module", entry.read_bytes())
        other.seal_for(loaded.sha256, "module").replace(seal)
    elif damage == "short-seal":
        seal.write_bytes(seal.read_bytes()[:-1])
    else:
        outside = tmp_path / "elsewhere.cwasm"
        entry.replace(outside)
        entry.symlink_to(outside)
    again = load_guest(guest("hello"), get_engine(), cache=cache)
    assert not again.cache_hit
    assert cache.stats.rejected == 1


# --- the module-path memo: a module is hashed once, not at every start -------------------------


def _custom_section(name: bytes) -> bytes:
    return bytes([0, len(name) + 1, len(name)]) + name


def test_a_remembered_module_is_not_read_again(
    cache: ArtifactCache,
    guest: Guest,
    settled: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = tmp_path / "m.wasm"
    shutil.copy(guest("hello"), module)
    first = load_guest(module, get_engine(), cache=cache)

    def no_read(path: Path) -> None:
        raise AssertionError("module read again")

    monkeypatch.setattr(loader, "_read_guest_file", no_read)
    again = load_guest(module, get_engine(), cache=cache)
    assert again.cache_hit
    assert again.sha256 == first.sha256


def test_a_module_changed_in_place_is_hashed_again(
    cache: ArtifactCache, guest: Guest, settled: None, tmp_path: Path
) -> None:
    """Same size, same mtime, same inode: only the ctime moved, and that is enough."""
    module = tmp_path / "m.wasm"
    base = guest("hello").read_bytes()
    module.write_bytes(base + _custom_section(b"a"))
    first = load_guest(module, get_engine(), cache=cache)
    st = module.stat()
    module.write_bytes(base + _custom_section(b"b"))
    os.utime(module, ns=(st.st_atime_ns, st.st_mtime_ns))
    again = load_guest(module, get_engine(), cache=cache)
    assert again.sha256 == hashlib.sha256(base + _custom_section(b"b")).hexdigest()
    assert again.sha256 != first.sha256


def test_a_module_changed_just_now_is_not_remembered(
    cache: ArtifactCache, guest: Guest, tmp_path: Path
) -> None:
    module = tmp_path / "m.wasm"
    shutil.copy(guest("hello"), module)
    load_guest(module, get_engine(), cache=cache)
    assert cache.path_digest(module) is None  # it may still be being written


def test_a_module_replaced_by_another_file_is_hashed_again(
    cache: ArtifactCache, guest: Guest, settled: None, tmp_path: Path
) -> None:
    module = tmp_path / "m.wasm"
    base = guest("hello").read_bytes()
    module.write_bytes(base + _custom_section(b"a"))
    load_guest(module, get_engine(), cache=cache)
    assert cache.path_digest(module) is not None
    other = tmp_path / "n.wasm"
    other.write_bytes(base + _custom_section(b"b"))
    other.replace(module)
    assert cache.path_digest(module) is None
    again = load_guest(module, get_engine(), cache=cache)
    assert again.sha256 == hashlib.sha256(base + _custom_section(b"b")).hexdigest()
