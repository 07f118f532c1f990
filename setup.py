"""The optional C extensions; everything else about the build is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "wasmgate._crossing",
            ["src/wasmgate/_crossing.c"],
            # Optional: where it cannot be built, wasmgate installs without it and host calls
            # cross on the pure-Python path (wasmgate.engine.crossing.available() is False).
            optional=True,
        ),
        Extension(
            "wasmgate._accesslog",
            ["src/wasmgate/_accesslog.c"],
            depends=["src/wasmgate/_extension.h"],
            # Optional too: without it the access log is written by pure Python
            # (wasmgate.gateway.accesslog.BatchWriter), the same lines at a higher cost.
            optional=True,
        ),
        Extension(
            "wasmgate._clock",
            ["src/wasmgate/_clock.c"],
            depends=["src/wasmgate/_extension.h"],
            # Optional too: without it the engines' epochs and the output pump's alarms are
            # kept by a Python thread (wasmgate.engine.clock.PyClock), at a cost to a busy server.
            optional=True,
        ),
    ]
)
