"""Installed-distribution versions without importing ``importlib.metadata``.

Importing ``importlib.metadata`` pulls in ``email``, ``zipfile``, ``csv`` and more: ~20 ms, which
was about half of ``wasmgate run``'s start-up beyond ``import wasmtime``. The common case (a
``.dist-info`` directory in a ``sys.path`` directory) needs none of it: find the first one on
``sys.path`` (the one ``importlib.metadata`` would pick) and read its ``Version`` header. Anything
unusual (an ``.egg-info``, a zip on ``sys.path``, a malformed ``METADATA``) falls back to
``importlib.metadata``.
"""

from __future__ import annotations

import functools
import os
import sys

__all__ = ["distribution_version"]


@functools.cache
def distribution_version(name: str) -> str:
    """The version of the installed distribution ``name``; ``PackageNotFoundError`` if none."""
    version = _scan_sys_path(name.lower().replace("-", "_").replace(".", "_"))
    if version is None:
        import importlib.metadata

        version = importlib.metadata.version(name)
    return version


def _scan_sys_path(normalized: str) -> str | None:
    for entry in sys.path:
        directory = entry or "."
        if os.path.isfile(directory):  # a zip: leave it to importlib.metadata
            return None
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for n in names:
            dist, _, rest = n.lower().partition("-")
            if dist.replace(".", "_") != normalized:
                continue
            if rest.endswith(".dist-info"):
                return _read_version(os.path.join(directory, n, "METADATA"))
            if rest.endswith(".egg-info"):
                return None
    return None


def _read_version(metadata: str) -> str | None:
    try:
        with open(metadata, encoding="utf-8") as f:
            for line in f:
                if not line.strip():  # end of the headers
                    break
                key, sep, value = line.partition(":")
                if sep and key.strip().lower() == "version":
                    return value.strip() or None
    except (OSError, UnicodeDecodeError):
        pass
    return None
