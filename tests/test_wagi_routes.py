"""Route patterns, the route table, and ``_routes`` declarations."""

from __future__ import annotations

import re

import pytest

from wasmgate.errors import ConfigError
from wasmgate.wagi.routes import (
    HEALTH_CHECK,
    HEALTH_PATH,
    HealthCheck,
    Route,
    RouteMatch,
    RoutePattern,
    RouteTable,
    expand_dynamic_routes,
    parse_routes_output,
)


def table(*routes: str | tuple[str, str]) -> RouteTable[str]:
    """A table whose handlers are the route texts (or the given names)."""
    entries = []
    for item in routes:
        text, name = (item, item) if isinstance(item, str) else item
        entries.append(Route(RoutePattern(text), name))
    return RouteTable(entries)


def handler_for(t: RouteTable[str], path: str) -> str | None:
    found = t.match(path)
    if found is None:
        return None
    if isinstance(found, HealthCheck):
        return "health"
    return found.route.handler


# --- patterns -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "base", "wildcard"),
    [
        ("/", "/", False),
        ("/x", "/x", False),
        ("/x/", "/x/", False),
        ("/x/y.html", "/x/y.html", False),
        ("/...", "", True),
        ("/x/...", "/x", True),
        ("/a/b/...", "/a/b", True),
        ("/a%20b", "/a%20b", False),
        ("/a/../b", "/a/../b", False),
    ],
)
def test_valid_route_patterns(text: str, base: str, wildcard: bool) -> None:
    pattern = RoutePattern(text)
    assert (pattern.text, pattern.base, pattern.wildcard) == (text, base, wildcard)
    assert pattern.script_name == base


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "route is empty"),
        ("x", "must start with '/'"),
        ("...", "must start with '/'"),
        ("/a b", "spaces or control characters"),
        ("/a\tb", "spaces or control characters"),
        ("/a\nb", "spaces or control characters"),
        ("/a\x00", "spaces or control characters"),
        ("/a\x7f", "spaces or control characters"),
        ("/caf\u00e9", "must be ASCII"),
        ("/a?b=1", "'?' or '#'"),
        ("/a#top", "'?' or '#'"),
        ("//", "empty segment"),
        ("//...", "empty segment"),
        ("/a//b", "empty segment"),
        ("/a/.../b", "final segment"),
        ("/a...", "final segment"),
        ("/a/...b", "final segment"),
        ("/a/..../...", "final segment"),
    ],
)
def test_invalid_route_patterns(text: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason) as info:
        RoutePattern(text)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("route", "path", "expected"),
    [
        ("/x", "/x", True),
        ("/x", "/x/", False),
        ("/x", "/x/y", False),
        ("/x", "/xy", False),
        ("/x", "/", False),
        ("/x/", "/x/", True),
        ("/x/", "/x", False),
        ("/x/...", "/x", True),
        ("/x/...", "/x/", True),
        ("/x/...", "/x/y", True),
        ("/x/...", "/x/y/z", True),
        ("/x/...", "/xy", False),
        ("/x/...", "/xy/z", False),
        ("/x/...", "/", False),
        ("/...", "/", True),
        ("/...", "/anything/at/all", True),
        ("/", "/", True),
        ("/", "/x", False),
        ("/app", "/%61pp", False),  # raw paths are compared as received
        ("/a/...", "/a%2Fb", False),  # an encoded slash is not a separator
    ],
)
def test_matching(route: str, path: str, expected: bool) -> None:
    assert RoutePattern(route).matches(path) is expected


@pytest.mark.parametrize(
    ("route", "path", "path_info"),
    [
        ("/x", "/x", ""),
        ("/x/...", "/x", ""),
        ("/x/...", "/x/", "/"),
        ("/x/...", "/x/a/b", "/a/b"),
        ("/...", "/", "/"),
        ("/...", "/a%20b", "/a%20b"),
    ],
)
def test_path_info(route: str, path: str, path_info: str) -> None:
    assert RoutePattern(route).path_info(path) == path_info


@pytest.mark.parametrize(
    ("first", "second", "covered"),
    [
        ("/...", "/x", True),
        ("/...", "/x/...", True),
        ("/...", "/...", True),
        ("/x/...", "/x", True),
        ("/x/...", "/x/y/...", True),
        ("/x/...", "/x/...", True),
        ("/x/...", "/xy", False),
        ("/x/...", "/...", False),
        ("/x", "/x", True),
        ("/x", "/x/...", False),
        ("/x", "/y", False),
        ("/x/y/...", "/x/...", False),
    ],
)
def test_covers(first: str, second: str, covered: bool) -> None:
    assert RoutePattern(first).covers(RoutePattern(second)) is covered


@pytest.mark.parametrize(
    ("parent", "sub", "joined"),
    [
        ("/app", "/hello", "/app/hello"),
        ("/app/...", "/hello", "/app/hello"),
        ("/app/", "/hello", "/app/hello"),
        ("/app", "hello", "/app/hello"),
        ("/app/...", "/files/...", "/app/files/..."),
        ("/app", "/files/...", "/app/files/..."),
        ("/app/...", "/...", "/app/..."),
        ("/app/...", "/", "/app/"),
        ("/app", "/a/b/", "/app/a/b/"),
        ("/", "/hello", "/hello"),
        ("/...", "/hello", "/hello"),
        ("/...", "/...", "/..."),
        ("/...", "/", "/"),
        ("/", "/x/...", "/x/..."),
    ],
)
def test_child_joins_with_one_slash(parent: str, sub: str, joined: str) -> None:
    assert RoutePattern(parent).child(sub).text == joined


def test_child_rejects_bad_subroutes() -> None:
    with pytest.raises(ConfigError, match="final segment"):
        RoutePattern("/app").child("/a/.../b")
    with pytest.raises(ConfigError, match="empty segment"):
        RoutePattern("/app").child("//x")


# --- table --------------------------------------------------------------------------------------


def test_health_route_comes_first_and_cannot_be_overridden() -> None:
    t = table("/healthz", "/...")
    assert t.match(HEALTH_PATH) is HEALTH_CHECK
    assert HEALTH_CHECK.status == 200
    assert HEALTH_CHECK.body == b"OK"
    # Only the exact path is the health route.
    assert handler_for(t, "/healthz/") == "/..."
    assert handler_for(t, "/healthzz") == "/..."


def test_health_route_exists_in_an_empty_table() -> None:
    t: RouteTable[str] = RouteTable([])
    assert t.match("/healthz") is HEALTH_CHECK
    assert t.match("/") is None


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/x", "exact x"),
        ("/x/", "x tree"),
        ("/x/y", "x tree"),
        ("/xy", "everything"),
        ("/", "everything"),
        ("/other/deep/path", "everything"),
    ],
)
def test_first_match_wins_in_table_order(path: str, expected: str) -> None:
    t = table(("/x", "exact x"), ("/x/...", "x tree"), ("/x/y", "never"), ("/...", "everything"))
    assert handler_for(t, path) == expected


def test_no_match_is_none() -> None:
    t = table("/x", "/y/...")
    assert t.match("/z") is None
    assert t.match("/x/") is None
    assert t.match("/yz") is None


def test_match_carries_the_raw_path_and_path_info() -> None:
    t = table("/static/...")
    found = t.match("/static/img/a%20b.png")
    assert isinstance(found, RouteMatch)
    assert found.raw_path == "/static/img/a%20b.png"
    assert found.raw_path_info == "/img/a%20b.png"
    assert found.route.entrypoint == "_start"
    assert table("/x").routes[0].pattern.text == "/x"


# --- _routes ------------------------------------------------------------------------------------


def test_parse_routes_output_reads_pairs_in_print_order() -> None:
    out = b"/hello hello\n\n   \r\n/goodbye/...\tgoodbye\r\nmain _start\n"
    assert parse_routes_output(out) == [
        ("/hello", "hello"),
        ("/goodbye/...", "goodbye"),
        ("/main", "_start"),
    ]


@pytest.mark.parametrize("out", [b"", b"\n\n", b"  \r\n"])
def test_parse_routes_output_with_no_routes_declares_nothing(out: bytes) -> None:
    assert parse_routes_output(out) == []


@pytest.mark.parametrize(
    ("out", "message"),
    [
        (b"/hello", 'line 1: expected "<route> <entrypoint>", got "/hello"'),
        (b"/a a\n/hello hello heya", 'line 2: expected "<route> <entrypoint>"'),
        (b"/a a\n\n/a/.../b x", "line 3: '...' is only allowed"),
        (b"/a?x y", "line 1: route must not contain '?'"),
        (b"/a \x01f", "line 1: entrypoint has control characters"),
        (b"/a \xff", "not valid UTF-8"),
    ],
)
def test_parse_routes_output_errors_name_the_line(out: bytes, message: str) -> None:
    with pytest.raises(ConfigError, match="^app _routes.*" + re.escape(message)) as info:
        parse_routes_output(out, origin="app _routes")
    assert "\n" not in str(info.value)


def test_expand_places_routes_before_parent_last_printed_first() -> None:
    parent = Route(RoutePattern("/example"), "mod")
    declared = parse_routes_output(b"/hello hello\n/goodbye/... goodbye\n/main _start\n")
    routes = expand_dynamic_routes(parent, declared)
    assert [(r.pattern.text, r.entrypoint) for r in routes] == [
        ("/example/main", "_start"),
        ("/example/goodbye/...", "goodbye"),
        ("/example/hello", "hello"),
        ("/example", "_start"),
    ]
    assert all(r.handler == "mod" for r in routes)


@pytest.mark.parametrize(
    ("printed", "expected", "path_info"),
    [
        # WAGI's documented example: the last matching line printed wins.
        (b"/one/... one\n/one/two/... two\n/one/two/three/... three\n", "three", "/four"),
        (b"/one/two/three/... three\n/one/two/... two\n/one/... one\n", "one", "/two/three/four"),
    ],
)
def test_last_printed_route_wins(printed: bytes, expected: str, path_info: str) -> None:
    parent = Route(RoutePattern("/example"), "mod")
    t = RouteTable(expand_dynamic_routes(parent, parse_routes_output(printed)))
    found = t.match("/example/one/two/three/four")
    assert isinstance(found, RouteMatch)
    assert found.route.entrypoint == expected
    assert found.raw_path_info == path_info


def test_dynamic_routes_keep_file_order_between_modules() -> None:
    first = Route(RoutePattern("/app/..."), "first")
    second = Route(RoutePattern("/app/special"), "second")
    t = RouteTable([*expand_dynamic_routes(first, [("/hello", "hello")]), second])
    hello = t.match("/app/hello")
    special = t.match("/app/special")
    assert isinstance(hello, RouteMatch)
    assert (hello.route.handler, hello.route.entrypoint) == ("first", "hello")
    # The parent wildcard of the earlier module still takes /app/special.
    assert isinstance(special, RouteMatch)
    assert (special.route.handler, special.route.entrypoint) == ("first", "_start")
