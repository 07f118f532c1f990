"""The hostile-input and fault suite (a package, so its conftest never shadows tests/conftest)."""
