"""The connection guard's settings: ``GatewayConfig`` fields, the ``wasmgate serve`` flags that
map into them, their validation, and the protocol class ``server.py`` hands to uvicorn.
(The flags at work against a real server: ``tests/hostile/test_hostile_guard_settings.py``.)"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from wasmgate import cli
from wasmgate.config import GatewayConfig
from wasmgate.errors import UsageError
from wasmgate.gateway import server
from wasmgate.gateway.app import Gateway
from wasmgate.gateway.protocol import GuardedHttpToolsProtocol, guarded_protocol

FIELDS = ("header_timeout", "body_timeout", "body_min_rate", "send_timeout")
TOML = Path("modules.toml")


def _settings(obj: object) -> tuple[float, ...]:
    return tuple(getattr(obj, name) for name in FIELDS)


def test_defaults() -> None:
    config = GatewayConfig(modules_toml=TOML)
    assert _settings(config) == (10.0, 20.0, 500.0, 30.0)
    assert _settings(GuardedHttpToolsProtocol) == _settings(config)
    assert _settings(guarded_protocol(config)) == _settings(config)


def test_guarded_protocol_takes_the_config_values() -> None:
    config = GatewayConfig(
        modules_toml=TOML, header_timeout=0.25, body_timeout=2, body_min_rate=1024, send_timeout=7
    )
    protocol = guarded_protocol(config)
    assert issubclass(protocol, GuardedHttpToolsProtocol)
    assert _settings(protocol) == (0.25, 2, 1024, 7)
    assert _settings(GuardedHttpToolsProtocol) == (10.0, 20.0, 500.0, 30.0)  # base untouched


def test_server_gives_uvicorn_the_configured_guard() -> None:
    """What every serving process (single, or each spawned worker) builds from its config."""
    config = GatewayConfig(modules_toml=TOML, header_timeout=3, send_timeout=4)
    uconfig = server._uvicorn_config(config, Gateway(config))
    assert isinstance(uconfig.http, type)
    assert issubclass(uconfig.http, GuardedHttpToolsProtocol)
    assert _settings(uconfig.http) == (3, 20.0, 500.0, 4)


@pytest.mark.parametrize("name", FIELDS)
@pytest.mark.parametrize("bad", [0, -1, -0.5, math.nan, math.inf, "10", True, None])
def test_bad_config_values_are_refused(name: str, bad: object) -> None:
    with pytest.raises(UsageError) as info:
        GatewayConfig(modules_toml=TOML, **{name: bad})  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{name} must be a positive number of ")
    assert info.value.exit_code == 2


# --- the serve flags ---------------------------------------------------------------------------


def _serve_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *flags: str) -> GatewayConfig:
    """The GatewayConfig ``wasmgate serve FLAGS`` would serve (the server itself is not run)."""
    seen: list[GatewayConfig] = []

    def fake_serve(config: GatewayConfig) -> int:
        seen.append(config)
        return 0

    monkeypatch.setattr(server, "serve", fake_serve)
    with pytest.raises(SystemExit) as info:
        cli.main(["serve", "-c", str(tmp_path / "modules.toml"), *flags])
    assert info.value.code == 0
    assert len(seen) == 1
    return seen[0]


def test_flags_map_into_the_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = _serve_config(
        monkeypatch,
        tmp_path,
        *("--header-timeout", "250ms", "--body-timeout", "2s"),
        *("--body-min-rate", "1KiB", "--send-timeout", "1m"),
    )
    assert _settings(config) == (0.25, 2.0, 1024, 60.0)
    assert _settings(guarded_protocol(config)) == (0.25, 2.0, 1024, 60.0)


def test_flags_default_to_the_config_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = _serve_config(monkeypatch, tmp_path, "--header-timeout", "3")
    assert _settings(config) == (3.0, 20.0, 500.0, 30.0)


def test_environment_is_read_through_the_flags(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The variables are the flags' own (WASMGATE_<FLAG>, see tests/test_deploy_env.py), parsed
    and validated like them; a flag on the command line wins."""
    for name in ("HEADER_TIMEOUT", "BODY_TIMEOUT", "BODY_MIN_RATE", "SEND_TIMEOUT"):
        monkeypatch.setenv(f"WASMGATE_{name}", "1")
    config = _serve_config(monkeypatch, tmp_path, "--send-timeout", "2s")
    assert _settings(config) == (1.0, 1.0, 1.0, 2.0)


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--header-timeout", "0", "invalid duration '0': must be greater than zero"),
        ("--header-timeout", "-1", "invalid duration '-1'"),
        ("--header-timeout", "soon", "invalid duration 'soon'"),
        ("--body-timeout", "0s", "invalid duration '0s': must be greater than zero"),
        ("--body-timeout", "1e9", "invalid duration '1e9'"),
        ("--body-min-rate", "0", "invalid size '0': must be greater than zero"),
        ("--body-min-rate", "fast", "invalid size 'fast'"),
        ("--body-min-rate", "-500", "invalid size '-500'"),
        ("--send-timeout", "inf", "invalid duration 'inf'"),
        ("--send-timeout", "", "invalid duration ''"),
    ],
)
def test_bad_flags_exit_2_with_one_line(
    wasmgate: Callable[..., Any], tmp_path: Path, flag: str, value: str, message: str
) -> None:
    # The modules.toml does not exist: a flag that slipped through would fail differently (1).
    r = wasmgate("serve", "-c", tmp_path / "modules.toml", "-l", "127.0.0.1:0", flag, value)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith(f"wasmgate: error: {flag}: {message}")
    assert len(r.stderr.splitlines()) == 1
    assert "Traceback" not in r.stderr
    assert r.stdout == ""


def test_help_names_units_and_defaults(wasmgate: Callable[..., Any]) -> None:
    out = wasmgate("serve", "--help").stdout
    options = {
        block.split()[0]: " ".join(block.split()) for block in re.split(r"\n  (?=-)", out)[1:]
    }
    assert "[10s]" in options["--header-timeout"]
    assert "[20s]" in options["--body-timeout"]
    assert "[500]" in options["--body-min-rate"]
    assert "Bytes per second" in options["--body-min-rate"]
    assert "[30s]" in options["--send-timeout"]
    for flag in ("--header-timeout", "--body-timeout", "--send-timeout"):
        assert options[flag].startswith(f"{flag} DURATION ")
