"""One Limits type: the same spellings as the CLI and modules.toml, nonsense refused with the
builtin exception a Python caller expects, one merge rule, and the user's own setting names."""

from __future__ import annotations

from typing import Any

import pytest

from wasmgate.errors import InvalidSetting, SettingTypeError, UsageError
from wasmgate.limits import CLI_NAMES, Limits


def test_the_cli_spellings_are_accepted_and_normalised() -> None:
    limits = Limits(
        timeout="1m30s",
        fuel="1_000_000",
        max_memory="64MiB",
        max_request_body="1KiB",
        max_response_body=2048,
        max_concurrency=4,
    )
    assert limits == Limits(
        timeout=90.0,
        fuel=1_000_000,
        max_memory=64 * 1024 * 1024,
        max_request_body=1024,
        max_response_body=2048,
        max_concurrency=4,
    )
    assert isinstance(Limits(timeout=5).timeout, float)


@pytest.mark.parametrize(
    ("field", "value", "error", "builtin"),
    [
        ("fuel", 1.5, SettingTypeError, TypeError),
        ("fuel", -1, InvalidSetting, ValueError),
        ("fuel", 0, InvalidSetting, ValueError),
        ("fuel", "lots", InvalidSetting, ValueError),
        ("fuel", True, SettingTypeError, TypeError),
        ("max_memory", -5, InvalidSetting, ValueError),
        ("max_memory", "-5MiB", InvalidSetting, ValueError),
        ("max_memory", 1.5e6, SettingTypeError, TypeError),
        ("max_memory", [64], SettingTypeError, TypeError),
        ("timeout", 0, InvalidSetting, ValueError),
        ("timeout", "soon", InvalidSetting, ValueError),
        ("timeout", float("nan"), InvalidSetting, ValueError),
        ("max_concurrency", 2.0, SettingTypeError, TypeError),
    ],
)
def test_nonsense_is_refused_clearly(field: str, value: Any, error: type, builtin: type) -> None:
    with pytest.raises(error) as err:
        Limits(**{field: value})
    assert isinstance(err.value, builtin)
    assert isinstance(err.value, UsageError)  # the CLI's exit status 2
    assert str(err.value).startswith(field)
    assert "\n" not in str(err.value)


def test_one_merge_rule_and_names_follow_their_values() -> None:
    server = Limits(timeout=30, max_memory="256MiB", max_request_body="10MiB").named(CLI_NAMES)
    route = Limits(max_memory="64MiB").named({"max_memory": "max_memory of route /x"})
    merged = server.merged(route)
    assert merged == Limits(timeout=30, max_memory="64MiB", max_request_body="10MiB")
    assert merged.name_of("max_memory") == "max_memory of route /x"
    assert merged.name_of("timeout") == "--timeout"
    assert Limits().name_of("fuel") == "Limits.fuel"
    assert server.merged(Limits()) == server
