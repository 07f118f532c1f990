"""What a guest imports that the host does not provide, found before instantiation.

Rules:
- Every import is checked before anything is instantiated, and *all* problems are reported in one
  ``MissingImports`` error (``env::foo: func(i32); env::bar: func() -> i64``), so a plugin author
  fixes them in one round instead of one per run. wasmtime itself stops at the first.
- Core modules: ``wasi_snapshot_preview1`` is provided when WASI is on; every other function import
  must be a registered host function whose signature equals the guest's declaration. Non-function
  imports (memories, tables, globals) are never provided.
- Components: an interface import the host's registry names (a namespace of that name) is the
  caller's, and needs each of its functions there; with WASI on, every other interface wasmgate's
  WASI host implements (``wasihttp.host.provides``: wasi:cli, clocks, filesystem, io, random,
  sockets, http, keyvalue, config) is that host's. Root-level function imports come from the
  default namespace.
- Anything this check accepts that wasmtime still refuses is reported as a ``LinkError`` with
  wasmtime's own (folded) message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import wasmtime
from wasmtime import component as cm

from ..engine import TypeNames, core_type, item_type
from ..errors import LinkError
from .coretypes import CoreSignature
from .hostfuncs import HostFunction, HostFunctions

__all__ = [
    "ComponentImports",
    "MissingImports",
    "check_component_imports",
    "check_core_imports",
]

WASI_P1 = "wasi_snapshot_preview1"


class MissingImports(LinkError):
    """The guest imports things the host does not provide; ``missing`` lists every one."""

    def __init__(self, guest: str, missing: Sequence[str]) -> None:
        n = len(missing)
        what = "import is" if n == 1 else "imports are"
        super().__init__(f"{guest}: {n} {what} not provided by the host: {'; '.join(missing)}")
        self.missing = tuple(missing)


def check_core_imports(
    name: str, module: wasmtime.Module, host: HostFunctions | None, *, wasi: bool
) -> list[tuple[HostFunction, CoreSignature]]:
    """The host functions ``module`` needs, with their signatures; raises ``MissingImports``."""
    needed: list[tuple[HostFunction, CoreSignature]] = []
    problems: list[str] = []
    for imp in module.imports:
        label = f"{imp.module}::{imp.name or ''}"
        ty = imp.type
        if wasi and imp.module == WASI_P1:
            continue
        hf = host.get(imp.module, imp.name or "") if host is not None else None
        if hf is None or not isinstance(ty, wasmtime.FuncType):
            problems.append(f"{label}: {core_type(ty)}")
            continue
        sig = hf.core_signature(ty)
        declared = core_type(ty)
        if sig.text() != declared:
            problems.append(f"{label}: guest expects {declared}, host function has {sig.text()}")
            continue
        needed.append((hf, sig))
    if problems:
        raise MissingImports(name, problems)
    return needed


@dataclass(frozen=True, slots=True)
class ComponentImports:
    """Who provides a component's imports: the caller's functions (interface or None for the
    root, function name, host function, WIT type) and the interfaces of the WASI host."""

    functions: list[tuple[str | None, str, HostFunction, cm.FuncType]]
    wasi: tuple[str, ...]


def check_component_imports(
    name: str,
    imports: dict[str, Any],
    engine: wasmtime.Engine,
    host: HostFunctions | None,
    *,
    wasi: bool,
    names: TypeNames | None = None,
) -> ComponentImports:
    """Who provides each import (see the rules); raises ``MissingImports`` listing everything
    nobody does."""
    from ..wasihttp.host import provides

    provided: list[tuple[str | None, str, HostFunction, cm.FuncType]] = []
    from_wasi: list[str] = []
    problems: list[str] = []
    default = host.module if host is not None else None
    namespaces = host.namespaces() if host is not None else set()
    for import_name, ext in imports.items():
        ty = ext.ty
        if wasi and import_name not in namespaces and provides(import_name):
            from_wasi.append(import_name)
            continue
        if isinstance(ty, cm.ComponentInstanceType):
            for fname, fext in ty.exports(engine).items():
                fty = fext.ty
                hf = host.get(import_name, fname) if host is not None else None
                if hf is None or not isinstance(fty, cm.FuncType):
                    problems.append(f"{import_name}#{fname}: {item_type(fty, names)}")
                else:
                    provided.append((import_name, fname, hf, fty))
        elif isinstance(ty, cm.FuncType) and host is not None and default is not None:
            hf = host.get(default, import_name)
            if hf is None:
                problems.append(f"{import_name}: {item_type(ty, names)}")
            else:
                provided.append((None, import_name, hf, ty))
        else:
            problems.append(f"{import_name}: {item_type(ty, names)}")
    if problems:
        raise MissingImports(name, problems)
    return ComponentImports(provided, tuple(from_wasi))
