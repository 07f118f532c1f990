"""Call every example component that has been built, through wasmgate, with Python values.

Usage: ``.venv/bin/python examples/components/run.py`` (after one or more ``*/build.sh``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import wasmgate

HERE = Path(__file__).resolve().parent
BUILT = {
    "C": HERE / "c" / "greeter-c.wasm",
    "Python": HERE / "python" / "greeter-py.wasm",
    "AssemblyScript": HERE / "assemblyscript" / "greeter-as.wasm",
}


@dataclass
class Person:
    name: str
    age: int


def main() -> int:
    found = 0
    for language, path in BUILT.items():
        if not path.exists():
            print(f"{language}: not built (run {path.parent.name}/build.sh)")
            continue
        found += 1
        comp = wasmgate.instantiate_component(path)
        print(f"{language}: greet -> {comp.exports.greet('wasmgate')!r}")
        if "oldest" in comp.exports:
            people = [Person("Ada", 36), Person("Grace", 85), Person("Linus", 28)]
            print(f"{language}: oldest -> {comp.exports.oldest(people)}")
    return 0 if found else 1


if __name__ == "__main__":
    sys.exit(main())
