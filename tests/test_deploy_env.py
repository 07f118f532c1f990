"""``WASMGATE_*`` environment variables for ``wasmgate serve``: one per flag, from the command's
own parameters (click's ``auto_envvar_prefix``), and the table of them in docs/deploying.md.

The table is generated from ``serve.params``; to rewrite it after changing a flag, run
``.venv/bin/python tests/test_deploy_env.py``."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import click
import pytest

from wasmgate import cli
from wasmgate.cli.serve import ENV_PREFIX, serve
from wasmgate.config import GatewayConfig
from wasmgate.gateway import server

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "deploying.md"
BEGIN = "<!-- serve-env:begin (generated from the serve flags by tests/test_deploy_env.py) -->"
END = "<!-- serve-env:end -->"

Check = Callable[[GatewayConfig, Path], bool]

# For every serve parameter: a value for its variable, and what the config must then hold.
CASES: dict[str, tuple[Callable[[Path], str], Check]] = {
    "modules_toml": (lambda d: str(d / "m.toml"), lambda c, d: c.modules_toml == d / "m.toml"),
    "listen": (lambda d: "127.0.0.1:4321", lambda c, d: c.listen == "127.0.0.1:4321"),
    "hostname": (
        lambda d: "gw.example:80",
        lambda c, d: c.hostname == "gw.example:80" and c.pin_hostname,
    ),
    "env": (lambda d: "A=1 B=two", lambda c, d: {("A", "1"), ("B", "two")} <= set(c.env)),
    "env_file": (lambda d: str(d / "e.env"), lambda c, d: ("FROM_FILE", "yes") in c.env),
    "log_dir": (lambda d: str(d / "logs"), lambda c, d: c.log_dir == d / "logs"),
    "tls_cert": (lambda d: str(d / "c.pem"), lambda c, d: c.tls_cert == d / "c.pem"),
    "tls_key": (lambda d: str(d / "k.pem"), lambda c, d: c.tls_key == d / "k.pem"),
    "timeout": (lambda d: "7s", lambda c, d: c.defaults.timeout == 7.0),
    "max_memory": (lambda d: "32MiB", lambda c, d: c.defaults.max_memory == 32 << 20),
    "fuel": (lambda d: "12345", lambda c, d: c.defaults.fuel == 12345),
    "max_request_body": (lambda d: "3KiB", lambda c, d: c.defaults.max_request_body == 3072),
    "max_response_body": (lambda d: "5KiB", lambda c, d: c.defaults.max_response_body == 5120),
    "workers": (lambda d: "3", lambda c, d: c.workers == 3),
    "threads": (lambda d: "5", lambda c, d: c.threads == 5),
    "queue": (lambda d: "9", lambda c, d: c.queue == 9),
    "max_body_buffer": (lambda d: "1MiB", lambda c, d: c.max_body_buffer == 1 << 20),
    "max_send_buffer": (lambda d: "2MiB", lambda c, d: c.max_send_buffer == 2 << 20),
    "no_inline": (lambda d: "1", lambda c, d: c.inline_budget is None),
    "metrics_listen": (
        lambda d: "127.0.0.1:9999",
        lambda c, d: c.metrics_listen == "127.0.0.1:9999",
    ),
    "watch": (lambda d: "true", lambda c, d: c.watch is True),
    "no_access_log": (lambda d: "yes", lambda c, d: c.access_log is False),
    "header_timeout": (lambda d: "3s", lambda c, d: c.header_timeout == 3.0),
    "body_timeout": (lambda d: "4s", lambda c, d: c.body_timeout == 4.0),
    "body_min_rate": (lambda d: "1KiB", lambda c, d: c.body_min_rate == 1024),
    "send_timeout": (lambda d: "6s", lambda c, d: c.send_timeout == 6.0),
    "cache_dir": (lambda d: str(d / "cache"), lambda c, d: c.cache.directory == d / "cache"),
    "no_cache": (lambda d: "1", lambda c, d: c.cache.enabled is False),
    # Any existing file will do: the runtime config is read when the server loads its routes.
    "runtime_config_file": (
        lambda d: str(d / "e.env"),
        lambda c, d: c.runtime_config_file == d / "e.env",
    ),
    "state_dir": (lambda d: str(d / "st"), lambda c, d: c.state_dir == d / "st"),
}


def serve_options() -> list[click.Option]:
    return [p for p in serve.params if isinstance(p, click.Option) and p.name != "help"]


def env_name(option: click.Option) -> str:
    assert option.name is not None
    return f"{ENV_PREFIX}_{option.name.upper()}"


def env_table() -> str:
    """The markdown table of every serve variable, from the command's own parameters."""
    rows = ["| variable | flag | default | meaning |", "| --- | --- | --- | --- |"]
    for option in serve_options():
        flag = max(option.opts, key=len)
        if option.is_flag:
            default = "off (`1` or `true`: on)"
        elif isinstance(option.default, str | int) and not option.multiple:
            default = f"`{option.default}`"
        else:
            default = "-"
        meaning = " ".join((option.help or _kind(option)).split()).replace("|", "\\|")
        if option.multiple:
            sep = "`:`" if isinstance(option.type, click.Path) else "spaces"
            meaning += f" Several values: separated by {sep}."
        rows.append(f"| `{env_name(option)}` | `{flag}` | {default} | {meaning} |")
    return "\n".join(rows) + "\n"


def _kind(option: click.Option) -> str:
    """What the value is, for a flag without help text."""
    kind = option.type
    if isinstance(kind, click.Path):
        return "A directory path." if not kind.file_okay else "A file path."
    if isinstance(kind, click.IntRange) and kind.min is not None:
        return f"An integer, at least {kind.min}."
    return f"A value of type {kind.name}."


def _config_from_env(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], *flags: str
) -> GatewayConfig:
    """The GatewayConfig ``wasmgate serve FLAGS`` builds under ``env`` (the server is not run)."""
    seen: list[GatewayConfig] = []

    def capture(config: GatewayConfig) -> int:
        seen.append(config)
        return 0

    monkeypatch.setattr(server, "serve", capture)
    for name in list(CASES):
        monkeypatch.delenv(f"{ENV_PREFIX}_{name.upper()}", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit) as info:
        cli.main(["serve", *flags])
    assert info.value.code == 0
    (config,) = seen
    return config


def test_every_serve_flag_has_a_case() -> None:
    assert sorted(o.name for o in serve_options()) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_serve_flag_is_settable_from_its_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str
) -> None:
    (tmp_path / "e.env").write_text("FROM_FILE=yes\n")
    value, check = CASES[name]
    env = {f"{ENV_PREFIX}_{name.upper()}": value(tmp_path)}
    if name == "tls_cert":
        env[f"{ENV_PREFIX}_TLS_KEY"] = str(tmp_path / "k.pem")
    if name == "tls_key":
        env[f"{ENV_PREFIX}_TLS_CERT"] = str(tmp_path / "c.pem")
    baseline = _config_from_env(monkeypatch, {})
    config = _config_from_env(monkeypatch, env)
    assert check(config, tmp_path), (name, config)
    assert not check(baseline, tmp_path), f"{name}: the check holds without the variable"


def test_a_flag_on_the_command_line_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"WASMGATE_WORKERS": "3", "WASMGATE_LISTEN": "127.0.0.1:4000"}
    config = _config_from_env(monkeypatch, env, "--workers", "2")
    assert (config.workers, config.listen) == (2, "127.0.0.1:4000")


def test_cache_dir_variable_keeps_its_meaning(monkeypatch: pytest.MonkeyPatch) -> None:
    """WASMGATE_CACHE_DIR was the cache's location before it was a serve variable: it still is,
    for serve (through --cache-dir) and for the engine's default (``default_cache_dir``)."""
    from wasmgate.engine import default_cache_dir

    config = _config_from_env(monkeypatch, {"WASMGATE_CACHE_DIR": "/srv/cache"})
    assert config.cache.directory == Path("/srv/cache") == default_cache_dir()


def test_a_bad_variable_fails_like_the_flag(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WASMGATE_WORKERS", "zero")
    assert cli.main(["serve"]) == 2
    assert "--workers: invalid number 'zero'" in capsys.readouterr().err


def test_docs_table_matches_the_flags() -> None:
    text = DOC.read_text()
    assert BEGIN in text, f"{DOC.name} lacks the generated table's markers"
    assert END in text, f"{DOC.name} lacks the generated table's markers"
    current = text.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n") + "\n"
    assert current == env_table(), (
        "docs/deploying.md's variable table is stale: run .venv/bin/python tests/test_deploy_env.py"
    )


def _write_doc() -> None:
    text = DOC.read_text()
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    DOC.write_text(f"{head}{BEGIN}\n{env_table()}{END}{tail}")


if __name__ == "__main__":
    _write_doc()
    sys.exit(0)
