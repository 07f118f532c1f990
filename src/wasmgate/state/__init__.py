"""State for guests: key-value stores (``wasi:keyvalue``, WAGI's ``wasmgate_kv``) and
configuration values (``wasi:config``), granted per route and kept on real backends.

Layers: ``backends`` (one contract, SQLite and Redis), ``runtime_config`` (which backend each
store label uses), ``grants`` (what one route may open), then the faces: ``keyvalue`` and
``config_store`` for components, ``wagi_kv`` for WAGI core modules.
"""
