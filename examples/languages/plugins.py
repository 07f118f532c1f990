"""Call the embedding plugins in C, Rust and AssemblyScript from Python, through wasmgate.

Each plugin is a core module that exports ``greet(name) -> string`` and imports one host function,
``env.visits(name) -> i32``, which this script implements in Python: it counts how many times it
has been asked about each name, across all the plugins. Strings cross the boundary with wasmgate's
convention (``docs/embedding.md``): the plugin exports an allocator (``cabi_realloc`` in C,
``alloc`` in Rust and AssemblyScript), arguments arrive as ``(ptr, len)`` of UTF-8, and the result
is one i64, ``(ptr << 32) | len``.

Usage (builds the plugins through the cache first)::

    .venv/bin/python examples/languages/plugins.py [NAME...]
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import wasmgate

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gallery  # examples/languages/gallery.py, through the path set above

PLUGINS = ("c", "rust", "assemblyscript")


def host_functions(seen: Counter[str]) -> wasmgate.HostFunctions:
    """The plugins' one import, ``env.visits``: count the name, return its count so far."""
    host = wasmgate.HostFunctions()

    @host.function
    def visits(memory: wasmgate.GuestMemory, ptr: int, length: int) -> int:
        name = memory.read_str(ptr, length)
        seen[name] += 1
        return seen[name]

    return host


def load(language: str, seen: Counter[str]) -> wasmgate.Instance:
    """Build (or take from the cache) one language's plugin and instantiate it; no WASI grants."""
    path = gallery.build(language).paths["plugin"]
    return wasmgate.instantiate(path, imports=host_functions(seen))


def main(argv: Sequence[str] | None = None) -> int:
    names = list(argv if argv is not None else sys.argv[1:]) or ["Ada", "żółw 🐢", "Ada"]
    seen: Counter[str] = Counter()
    failed = 0
    for language in PLUGINS:
        title = gallery.LANGUAGES[language].title
        try:
            plugin = load(language, seen)
        except gallery.ToolchainMissing as e:
            print(f"{title}: skipped, toolchain missing: {e}")
            continue
        except gallery.BuildFailed as e:
            print(f"{title}: build failed: {e}", file=sys.stderr)
            failed += 1
            continue
        for name in names:
            print(f"{title}: greet({name!r}) -> {plugin.call_str('greet', name)!r}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
