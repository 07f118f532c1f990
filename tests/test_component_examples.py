"""The example components in examples/components/, for whichever have been built (their build
scripts need npm or componentize-py, which the test suite does not): same WIT, same answers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

import wasmgate
from conftest import ROOT
from wasmgate import CacheConfig

EXAMPLES = ROOT / "examples" / "components"
BUILT = {
    "c": EXAMPLES / "c" / "greeter-c.wasm",
    "python": EXAMPLES / "python" / "greeter-py.wasm",
    "assemblyscript": EXAMPLES / "assemblyscript" / "greeter-as.wasm",
}


@dataclass
class Person:
    name: str
    age: int


@pytest.mark.parametrize("language", list(BUILT))
def test_example_component(language: str, cache_dir: Path) -> None:
    path = BUILT[language]
    if not path.exists():
        pytest.skip(f"{path.relative_to(ROOT)} is not built (see examples/components/README.md)")
    comp = wasmgate.instantiate_component(path, cache=CacheConfig(directory=cache_dir))
    assert comp.exports.greet("wasmgate") == "Hello, wasmgate!"
    assert comp.exports.greet("żółw 🐢") == "Hello, żółw 🐢!"
    if language == "assemblyscript":
        return  # the greeter-lite world: greet only
    oldest = comp.exports.oldest([Person("Ada", 36), Person("Grace", 85), {"name": "L", "age": 1}])
    assert (oldest.name, oldest.age) == ("Grace", 85)
    assert comp.exports.oldest([]) is None
    for _ in range(200):  # results are freed by cabi_post_oldest: memory stays bounded
        comp.exports.oldest([Person("x" * 1000, 1)] * 20)
