"""Embedding WebAssembly in Python programs (see docs/embedding.md).

- ``instantiate`` (core modules) and ``instantiate_component`` (components) load through the
  shared engine and cache and sandbox the guest with ``Capabilities`` and ``Limits``.
- ``HostFunctions`` turns plain Python callables into the guest's imports.
- ``values`` maps WIT values to Python and back; ``wave`` reads and writes them as text.
"""

from .component import ComponentExports, ComponentFunction, ComponentInstance, instantiate_component
from .coretypes import f32, f64, i32, i64
from .hostfuncs import HostFunction, HostFunctions
from .instance import ExportFunction, Exports, Instance, instantiate
from .linking import MissingImports
from .memory import GuestMemory, GuestMemoryError
from .values import ComponentError, Err, Ok, Some, Variant
from .wave import WaveError, format_value, parse_value

__all__ = [
    "ComponentError",
    "ComponentExports",
    "ComponentFunction",
    "ComponentInstance",
    "Err",
    "ExportFunction",
    "Exports",
    "GuestMemory",
    "GuestMemoryError",
    "HostFunction",
    "HostFunctions",
    "Instance",
    "MissingImports",
    "Ok",
    "Some",
    "Variant",
    "WaveError",
    "f32",
    "f64",
    "format_value",
    "i32",
    "i64",
    "instantiate",
    "instantiate_component",
    "parse_value",
]
