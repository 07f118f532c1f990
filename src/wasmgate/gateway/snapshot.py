"""What a ``--workers`` master validated, handed to its workers: the modules.toml text and the
very bytes of every module it names.

Rules:
- A worker never reads the operator's files. It serves what its master checked, so a module
  file changed or broken after the check (by a deploy in progress, say) cannot reach a worker
  that starts or restarts later, nor a worker's reload: only a reload of the master, which
  checks again, moves the workers on.
- The master validates the copies themselves: each module file is read once, stored in the run
  directory under its sha256 (``modules/<hex>``, written to a temporary name and renamed), and
  the route table is loaded from those copies; only a configuration that loads is published.
- Publishing is one atomic rename of ``snapshot.json`` (the text and the map from each module
  path to its copy), so a worker reads a text and the modules it names together, never a new
  text with old modules.
- Copies no longer named are removed at the next publication after, not at once: a worker may
  have read the previous map and be about to open its files.
- The run directory is the master's private temporary directory (mode 0700): the copies are
  trusted as the master wrote them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

from ..config import GatewayConfig
from ..engine import default_pump
from ..engine.loader import read_guest_bytes
from ..errors import LoadError
from .state import load_state

__all__ = ["Snapshot", "WorkerSnapshot"]

_FILE = "snapshot.json"
_MODULES = "modules"

Resolve = Callable[[Path], Path]


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.new")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class Snapshot:
    """The master's side: ``publish`` checks a configuration and hands it to the workers."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.modules = run_dir / _MODULES
        self.modules.mkdir(exist_ok=True)
        self._previous: set[str] = set()

    def publish(self, config: GatewayConfig, text: str) -> None:
        """Copy the modules ``text`` names, load the route table from the copies (raises
        ``ConfigError`` as a load does, publishing nothing), then publish text and copies."""
        copies: dict[str, str] = {}

        def resolve(path: Path) -> Path:
            digest = copies.get(str(path))
            if digest is None:
                data = read_guest_bytes(path)
                digest = hashlib.sha256(data).hexdigest()
                dest = self.modules / digest
                if not dest.exists():
                    _write_atomically(dest, data)
                copies[str(path)] = digest
            return self.modules / digest

        state = load_state(config, default_pump(), text, resolve=resolve)
        del state
        record = {"manifest": text, "modules": copies}
        _write_atomically(self.run_dir / _FILE, json.dumps(record).encode())
        keep = set(copies.values()) | self._previous
        for f in self.modules.iterdir():
            if f.name not in keep and not f.name.endswith(".new"):
                f.unlink(missing_ok=True)
        self._previous = set(copies.values())


class WorkerSnapshot:
    """A worker's side: the text and the module copies its master last published."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def read(self) -> tuple[str, Resolve]:
        record = json.loads((self.run_dir / _FILE).read_bytes())
        text: str = record["manifest"]
        copies: dict[str, str] = record["modules"]
        modules = self.run_dir / _MODULES

        def resolve(path: Path) -> Path:
            digest = copies.get(str(path))
            if digest is None:
                raise LoadError(f"{path.name}: not in the configuration the master validated")
            return modules / digest

        return text, resolve
