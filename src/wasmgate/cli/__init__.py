"""The ``wasmgate`` command line: a thin adapter over ``config`` and ``api``.

Rules:
- Flags mirror the ``wasmtime`` CLI where it has one (``--dir HOST::GUEST``, ``--env``,
  ``--invoke``, ``--fuel``, ``--allow-precompiled``) and the config fields everywhere.
- Errors are mapped to exit statuses in one place (``main.main``): a ``WasmgateError`` prints
  one line ``wasmgate: error: ...`` and exits with its ``exit_code``; a trap also prints its wasm
  backtrace. No Python traceback reaches the user for anything we anticipated.
- Layout: ``params`` (click types), ``options`` (shared option groups), one module per command
  (``run``, ``call``, ``serve``, ``tools`` for compile and inspect), ``main`` (the group and the
  error mapping). Commands import only ``params`` and ``options`` from here: no cycles.
"""

from .main import cli, console, main

__all__ = ["cli", "console", "main"]
