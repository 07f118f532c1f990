"""The compiled-artifact cache: hit, miss, corruption, foreign entries, unusable directories."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from wasmgate.engine import ArtifactCache, get_engine, load_guest
from wasmgate.engine.cache import MAGIC

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
    assert entries(cache)[0].read_bytes().startswith(MAGIC)


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
