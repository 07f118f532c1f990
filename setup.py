"""The optional C extension; everything else about the build is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "wasmgate._crossing",
            ["src/wasmgate/_crossing.c"],
            # Optional: where it cannot be built, wasmgate installs without it and host calls
            # cross on the pure-Python path (wasmgate.engine.crossing.available() is False).
            optional=True,
        )
    ]
)
