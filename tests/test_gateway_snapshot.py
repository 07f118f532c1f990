"""The configuration a ``--workers`` master hands its workers (``gateway/snapshot.py``): the
text and the very module bytes it validated, published at once, never the operator's files."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway_support import wat_guest
from wasmgate.config import GatewayConfig
from wasmgate.errors import ConfigError
from wasmgate.gateway.app import Gateway
from wasmgate.gateway.snapshot import Snapshot, WorkerSnapshot
from wasmgate.gateway.state import read_manifest_text
from wasmgate.wagi.cgi import CgiRequest
from wasmgate.wagi.routes import RouteMatch

TOML = '[[module]]\nroute = "/v"\nmodule = "v.wat"\n'


def _site(tmp_path: Path, answer: bytes) -> GatewayConfig:
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "v.wat").write_text(wat_guest(b"Content-Type: text/plain\n\n" + answer))
    (site / "modules.toml").write_text(TOML)
    return GatewayConfig(modules_toml=site / "modules.toml", threads=1)


def _answer(gateway: Gateway) -> bytes:
    state = gateway.load()
    found = state.table.match("/v")
    assert isinstance(found, RouteMatch)
    request = CgiRequest.from_asgi_scope(
        {"type": "http", "method": "GET", "path": "/v", "raw_path": b"/v", "headers": []}
    )
    result = found.route.handler.handle(request, b"", found)
    assert result.response is not None
    return result.response.body


def test_a_worker_loads_the_masters_copies_not_the_files(tmp_path: Path) -> None:
    config = _site(tmp_path, b"one")
    run = tmp_path / "run"
    run.mkdir()
    Snapshot(run).publish(config, read_manifest_text(config.modules_toml))
    # The operator's file breaks after the check: a worker (starting now) never sees it.
    (config.modules_toml.parent / "v.wat").write_text("(module")
    gateway = Gateway(config, snapshot=WorkerSnapshot(run))
    assert _answer(gateway) == b"one"
    gateway.close()


def test_a_broken_configuration_is_never_published(tmp_path: Path) -> None:
    config = _site(tmp_path, b"one")
    run = tmp_path / "run"
    run.mkdir()
    snapshot = Snapshot(run)
    snapshot.publish(config, TOML)
    (config.modules_toml.parent / "v.wat").write_text("(module")
    with pytest.raises(ConfigError, match=r"v\.wat"):
        snapshot.publish(config, TOML)
    gateway = Gateway(config, snapshot=WorkerSnapshot(run))
    assert _answer(gateway) == b"one"  # still the last good one
    gateway.close()


def test_old_copies_go_one_publication_later(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    snapshot = Snapshot(run)
    seen = []
    for answer in (b"one", b"two", b"three"):
        config = _site(tmp_path, answer)
        snapshot.publish(config, TOML)
        seen.append({f.name for f in (run / "modules").iterdir()})
        gateway = Gateway(config, snapshot=WorkerSnapshot(run))
        assert _answer(gateway) == answer
        gateway.close()
    assert len(seen[0]) == 1
    assert len(seen[1]) == 2  # the previous generation is kept for a worker reading it now
    assert len(seen[2]) == 2
    assert seen[0].isdisjoint(seen[2])
