import pytest

from wasmgate.errors import UsageError
from wasmgate.units import format_duration, format_size, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", 1),
        ("512", 512),
        ("1K", 1024),
        ("1kb", 1024),
        ("64MiB", 64 << 20),
        ("2G", 2 << 30),
        ("1.5M", 3 << 19),
        (4096, 4096),
    ],
)
def test_parse_size(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "x", "0", "-1", "1.5q", "12 parsecs", "0K"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(UsageError, match="size"):
        parse_size(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5", 5.0),
        ("250ms", 0.25),
        ("30s", 30.0),
        ("2m", 120.0),
        ("1h", 3600.0),
        ("1m30s", 90.0),
        (1.5, 1.5),
    ],
)
def test_parse_duration(text: str | float, expected: float) -> None:
    assert parse_duration(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["", "x", "0", "0s", "-1s", "5x", "s", "1s2"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(UsageError, match="duration"):
        parse_duration(text)


def test_formatting() -> None:
    assert format_size(64 << 20) == "64MiB"
    assert format_size(100) == "100B"
    assert format_duration(0.25) == "250ms"
    assert format_duration(3) == "3s"
