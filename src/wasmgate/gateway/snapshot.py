"""What a ``--workers`` master validated, handed to its workers: the modules.toml text, the
very bytes of every module it names, and the text of the runtime config file.

Rules:
- A worker never reads the operator's files. It serves what its master checked, so a module
  file changed or broken after the check (by a deploy in progress, say) cannot reach a worker
  that starts or restarts later, nor a worker's reload: only a reload of the master, which
  checks again, moves the workers on.
- The master validates the copies themselves: each module file is read once, stored in the run
  directory under its sha256 (``modules/<hex>``, written to a temporary name and renamed), and
  the route table is loaded from those copies; only a configuration that loads is published.
- Publishing is one atomic rename of ``snapshot.json`` (the text, the map from each module
  path to its copy, and the runtime config's text, validated in the same load), so a worker
  reads a text, the modules it names and the stores it uses together, never a new text with old
  modules or an old runtime config.
- Copies no longer named are removed at the next publication after, not at once: a worker may
  have read the previous map and be about to open its files.
- The run directory is the master's private temporary directory (mode 0700): the copies are
  trusted as the master wrote them, and the runtime config's text (a Redis URL in it may hold a
  password) is readable by nobody else.
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
from .state import load_state, read_runtime_config_text

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
        """Copy the modules ``text`` names, read the runtime config file, load the route table
        from the copies and that text (raises ``ConfigError`` as a load does, publishing
        nothing), then publish text, copies and runtime config."""
        copies: dict[str, str] = {}
        rc = config.runtime_config_file
        runtime_config = None if rc is None else read_runtime_config_text(rc)

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

        state = load_state(config, default_pump(), text, runtime_config, resolve=resolve)
        del state
        record = {"manifest": text, "modules": copies, "runtime_config": runtime_config}
        _write_atomically(self.run_dir / _FILE, json.dumps(record).encode())
        keep = set(copies.values()) | self._previous
        for f in self.modules.iterdir():
            if f.name not in keep and not f.name.endswith(".new"):
                f.unlink(missing_ok=True)
        self._previous = set(copies.values())


class WorkerSnapshot:
    """A worker's side: the text, the module copies and the runtime config its master last
    published."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def read(self) -> tuple[str, Resolve, str | None]:
        record = json.loads((self.run_dir / _FILE).read_bytes())
        text: str = record["manifest"]
        copies: dict[str, str] = record["modules"]
        runtime_config: str | None = record["runtime_config"]
        modules = self.run_dir / _MODULES

        def resolve(path: Path) -> Path:
            digest = copies.get(str(path))
            if digest is None:
                raise LoadError(f"{path.name}: not in the configuration the master validated")
            return modules / digest

        return text, resolve, runtime_config
