"""modules.toml loading, --env-file and -e parsing."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from wasmgate.capabilities import DirGrant
from wasmgate.errors import ConfigError, UsageError
from wasmgate.limits import Limits
from wasmgate.wagi.manifest import (
    Manifest,
    ModuleSpec,
    load_env_file,
    load_manifest,
    parse_env_assignment,
    parse_manifest,
)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A folder with modules and a static directory, next to which modules.toml is written."""
    (tmp_path / "hello.wasm").write_bytes(b"\0asm\1\0\0\0")
    (tmp_path / "hello.wat").write_text("(module)")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "api.wasm").write_bytes(b"\0asm\1\0\0\0")
    (tmp_path / "static").mkdir()
    return tmp_path


def write(site: Path, text: str, name: str = "modules.toml") -> Path:
    path = site / name
    path.write_text(text)
    return path


def load(site: Path, text: str) -> Manifest:
    return load_manifest(write(site, text))


def test_full_entry(site: Path) -> None:
    manifest = load(
        site,
        """
[[module]]
route = "/api/..."
module = "lib/api.wasm"
entrypoint = "handle"
volumes = {"/static" = "static", "/abs" = "%s"}
environment = {GREETING = "hello", EMPTY = ""}
argv = "${SCRIPT_NAME} --verbose ${ARGS}"
allowed_hosts = ["https://example.com"]
http_max_concurrency = 4
timeout = "1m30s"
max_memory = "64MiB"
fuel = 1000000
max_request_body = "1MiB"
max_response_body = 2048

[[module]]
route = "/"
module = "hello.wat"
"""
        % (site / "static"),
    )
    assert manifest.warnings == ()
    api, root = manifest.modules
    assert api == ModuleSpec(
        index=1,
        route=api.route,
        module="lib/api.wasm",
        module_path=site / "lib" / "api.wasm",
        entrypoint="handle",
        volumes=(DirGrant(site / "static", "/static"), DirGrant(site / "static", "/abs")),
        environment={"GREETING": "hello", "EMPTY": ""},
        argv="${SCRIPT_NAME} --verbose ${ARGS}",
        allowed_hosts=("https://example.com",),
        http_max_concurrency=4,
        limits=Limits(
            timeout=90.0,
            max_memory=64 * 1024 * 1024,
            fuel=1_000_000,
            max_request_body=1024 * 1024,
            max_response_body=2048,
        ),
    )
    assert api.route.text == "/api/..."
    assert api.label == 'module #1 (route "/api/...")'
    assert root.module_path == site / "hello.wat"
    assert (root.entrypoint, root.volumes, dict(root.environment), root.argv) == (
        "_start",
        (),
        {},
        None,
    )
    assert (root.allowed_hosts, root.http_max_concurrency, root.limits) == (
        None,
        None,
        Limits(),
    )


def test_relative_paths_resolve_against_the_toml_folder(
    site: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path_factory.mktemp("cwd")
    monkeypatch.chdir(elsewhere)
    path = write(
        site,
        '[[module]]\nroute = "/"\nmodule = "lib/api.wasm"\nvolumes = {"/s" = "static"}\n',
    )
    spec = load_manifest(os.path.relpath(path, elsewhere)).modules[0]
    assert spec.module_path.is_absolute()
    assert spec.module_path.samefile(site / "lib" / "api.wasm")
    assert spec.volumes[0].host.samefile(site / "static")


def test_volume_forms(site: Path) -> None:
    """WAGI's string form is read-write; the table form may be read-only; both mix freely."""
    (site / "assets").mkdir()
    volumes = (
        '"/data" = "static", "/ro" = { path = "assets", read_only = true }, '
        '"/rw" = { path = "assets", read_only = false }, "/plain" = { path = "static" }'
    )
    text = f'[[module]]\nroute = "/"\nmodule = "hello.wasm"\nvolumes = {{ {volumes} }}\n'
    spec = load(site, text).modules[0]
    assert spec.volumes == (
        DirGrant(site / "static", "/data"),
        DirGrant(site / "assets", "/ro", read_only=True),
        DirGrant(site / "assets", "/rw"),
        DirGrant(site / "static", "/plain"),
    )
    assert [v.read_only for v in spec.volumes] == [False, True, False, False]


def test_volume_table_in_a_subtable(site: Path) -> None:
    """The table form written as a TOML sub-table, not inline, is the same thing."""
    spec = load(
        site,
        '[[module]]\nroute = "/"\nmodule = "hello.wasm"\n'
        '[module.volumes."/ro"]\npath = "static"\nread_only = true\n',
    ).modules[0]
    assert spec.volumes == (DirGrant(site / "static", "/ro", read_only=True),)


def test_volume_table_unknown_keys_are_warnings(site: Path) -> None:
    manifest = parse_manifest(
        '[[module]]\nroute = "/a"\nmodule = "hello.wasm"\n'
        'volumes = { "/s" = { path = "static", readonly = true, mode = "ro" } }\n',
        base_dir=site,
    )
    assert manifest.modules[0].volumes == (DirGrant(site / "static", "/s"),)
    assert manifest.warnings == (
        'modules.toml: module #1 (route "/a"): volume "/s": unknown key "readonly" ignored '
        '(did you mean "read_only"?)',
        'modules.toml: module #1 (route "/a"): volume "/s": unknown key "mode" ignored',
    )


def test_numeric_limits(site: Path) -> None:
    spec = load(
        site,
        '[[module]]\nroute = "/"\nmodule = "hello.wasm"\ntimeout = 2.5\nmax_memory = 65536\n',
    ).modules[0]
    assert (spec.limits.timeout, spec.limits.max_memory) == (2.5, 65536)
    spec = load(site, '[[module]]\nroute = "/"\nmodule = "hello.wasm"\ntimeout = 30\n').modules[0]
    assert spec.limits.timeout == 30.0


@pytest.mark.parametrize(
    "reference",
    ["file:///{site}/hello.wasm", "file://localhost/{site}/hello.wasm", "file:hello.wasm"],
)
def test_file_urls(site: Path, reference: str) -> None:
    text = f'[[module]]\nroute = "/"\nmodule = "{reference.format(site=site)}"\n'
    assert load(site, text).modules[0].module_path.samefile(site / "hello.wasm")


def test_file_url_is_percent_decoded(site: Path) -> None:
    (site / "a b.wasm").write_bytes(b"\0asm\1\0\0\0")
    text = '[[module]]\nroute = "/"\nmodule = "file:a%20b.wasm"\n'
    assert load(site, text).modules[0].module_path == site / "a b.wasm"


def test_parse_manifest_from_text(site: Path) -> None:
    manifest = parse_manifest(
        '[[module]]\nroute = "/x"\nmodule = "hello.wasm"\n', base_dir=site, source="inline"
    )
    assert manifest.modules[0].module_path == site / "hello.wasm"
    with pytest.raises(ConfigError, match=r'^inline: module #1 \(route "/y"\): module file'):
        parse_manifest(
            '[[module]]\nroute = "/y"\nmodule = "no.wasm"\n', base_dir=site, source="inline"
        )


# --- warnings -----------------------------------------------------------------------------------


def test_unknown_keys_are_warnings(site: Path) -> None:
    manifest = load(
        site,
        """
title = "x"

[[module]]
route = "/a"
module = "hello.wasm"
entrypiont = "main"
repository = "x"
colour = "blue"
""",
    )
    assert manifest.modules[0].entrypoint == "_start"
    assert manifest.warnings == (
        'modules.toml: unknown top-level key "title" ignored'.replace(
            "modules.toml", str(site / "modules.toml")
        ),
        f'{site / "modules.toml"}: module #1 (route "/a"): unknown key "entrypiont" ignored '
        '(did you mean "entrypoint"?)',
        f'{site / "modules.toml"}: module #1 (route "/a"): key "repository" is not supported; '
        "ignored",
        f'{site / "modules.toml"}: module #1 (route "/a"): unknown key "colour" ignored',
    )


def test_reachability_and_reserved_name_warnings(site: Path) -> None:
    manifest = parse_manifest(
        """
[[module]]
route = "/app/..."
module = "hello.wasm"
environment = {PATH_INFO = "x", HTTP_HOST = "y", MINE = "z"}

[[module]]
route = "/app/x"
module = "hello.wasm"

[[module]]
route = "/healthz"
module = "hello.wasm"

[[module]]
route = "/other"
module = "hello.wasm"
""",
        base_dir=site,
    )
    assert manifest.warnings == (
        'modules.toml: module #1 (route "/app/..."): environment.PATH_INFO is always replaced '
        "by the CGI variable of the same name",
        'modules.toml: module #1 (route "/app/..."): environment.HTTP_HOST is always replaced '
        "by the CGI variable of the same name",
        'modules.toml: module #2 (route "/app/x"): unreachable, module #1 (route "/app/...") '
        "comes first and matches every path it does",
        'modules.toml: module #3 (route "/healthz"): /healthz is always answered by the '
        "built-in health check",
    )


# --- errors -------------------------------------------------------------------------------------

ENTRY = '[[module]]\nroute = "/api/..."\nmodule = "hello.wasm"\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[module]\n", "modules.toml: invalid TOML: "),
        ("", "modules.toml: no [[module]] entries"),
        ("module = []\n", "modules.toml: no [[module]] entries"),
        ('module = "x"\n', "modules.toml: 'module' must be an array of tables ([[module]])"),
        ("module = [1]\n", "modules.toml: module #1 must be a table, not an integer"),
        (
            '[[module]]\nmodule = "hello.wasm"\n',
            'modules.toml: module #1: missing required key "route"',
        ),
        (
            '[[module]]\nroute = 1\nmodule = "hello.wasm"\n',
            "modules.toml: module #1: route must be a string, not an integer",
        ),
        (
            '[[module]]\nroute = "/x"\n',
            'modules.toml: module #1 (route "/x"): missing required key "module"',
        ),
        (
            ENTRY + '[[module]]\nroute = "/api/..."\nmodule = "api.wasm"\n',
            'modules.toml: module #2 (route "/api/..."): module file not found: api.wasm',
        ),
        (
            '[[module]]\nroute = "/x"\nmodule = "lib"\n',
            'modules.toml: module #1 (route "/x"): module path is not a file: lib',
        ),
        (
            '[[module]]\nroute = "x"\nmodule = "hello.wasm"\n',
            "modules.toml: module #1 (route \"x\"): route must start with '/'",
        ),
        (
            '[[module]]\nroute = ""\nmodule = "hello.wasm"\n',
            'modules.toml: module #1 (route ""): route must not be empty',
        ),
        (
            '[[module]]\nroute = "/a b"\nmodule = "hello.wasm"\n',
            'modules.toml: module #1 (route "/a b"): route must not contain spaces',
        ),
        (
            '[[module]]\nroute = "/a\\nb"\nmodule = "hello.wasm"\n',
            'modules.toml: module #1 (route "/a\\nb"): route must not contain spaces',
        ),
        (
            '[[module]]\nroute = "/a/.../b"\nmodule = "hello.wasm"\n',
            "modules.toml: module #1 (route \"/a/.../b\"): '...' is only allowed",
        ),
        (
            ENTRY + 'entrypoint = ""\n',
            'modules.toml: module #1 (route "/api/..."): entrypoint must not be empty',
        ),
        (
            ENTRY + "entrypoint = 3\n",
            '(route "/api/..."): entrypoint must be a string, not an integer',
        ),
        (
            '[[module]]\nroute = "/x"\nmodule = "oci:foo/bar:1.0"\n',
            'unsupported module reference "oci:foo/bar:1.0": only paths and file:// URLs are',
        ),
        (
            '[[module]]\nroute = "/x"\nmodule = "bindle:example.com/x/1.0"\n',
            'modules.toml: module #1 (route "/x"): unsupported module reference',
        ),
        (
            '[[module]]\nroute = "/x"\nmodule = "file://hello.wasm"\n',
            'modules.toml: module #1 (route "/x"): file URL "file://hello.wasm" names a host',
        ),
        (
            '[[module]]\nroute = "/x"\nmodule = "file://"\n',
            'modules.toml: module #1 (route "/x"): module reference "file://" names no file',
        ),
        (
            ENTRY + 'volumes = {"/s" = "missing"}\n',
            '(route "/api/..."): volume "/s": host directory not found: missing',
        ),
        (ENTRY + 'volumes = {"/s" = "hello.wasm"}\n', "host directory not found: hello.wasm"),
        (ENTRY + 'volumes = {"/s" = ""}\n', 'volume "/s": host directory is empty'),
        (ENTRY + 'volumes = {"" = "static"}\n', 'volume guest path "" is invalid'),
        (
            ENTRY + 'volumes = ["static"]\n',
            'volumes must be a table such as {"/data" = "data"}, not an array',
        ),
        (
            ENTRY + 'volumes = {"/s" = 1}\n',
            'volume "/s" must be a host directory string or a table such as '
            '{ path = "data", read_only = true }, not an integer',
        ),
        (
            ENTRY + 'volumes = {"/s" = ["static"]}\n',
            'volume "/s" must be a host directory string or a table such as '
            '{ path = "data", read_only = true }, not an array',
        ),
        (
            ENTRY + 'volumes = {"/s" = { read_only = true }}\n',
            '(route "/api/..."): volume "/s": missing required key "path"',
        ),
        (ENTRY + 'volumes = {"/s" = { path = 1 }}\n', 'volume "/s": path must be a string, not an'),
        (ENTRY + 'volumes = {"/s" = { path = "" }}\n', 'volume "/s": host directory is empty'),
        (
            ENTRY + 'volumes = {"/s" = { path = "missing", read_only = true }}\n',
            'volume "/s": host directory not found: missing',
        ),
        (
            ENTRY + 'volumes = {"/s" = { path = "static", read_only = "yes" }}\n',
            'volume "/s": read_only must be a boolean, not a string',
        ),
        (
            ENTRY + 'volumes = {"/s" = { path = "static", read_only = 1 }}\n',
            'volume "/s": read_only must be a boolean, not an integer',
        ),
        (
            ENTRY + 'volumes = {"/s\\n" = { path = "static", read_only = 1 }}\n',
            'volume "/s\\n": read_only must be a boolean, not an integer',
        ),
        (
            ENTRY + 'environment = {"1X" = "v"}\n',
            'environment: invalid environment variable name "1X"',
        ),
        (ENTRY + 'environment = {"A=B" = "v"}\n', 'invalid environment variable name "A=B"'),
        (ENTRY + 'environment = {A = "a\\u0000b"}\n', "environment variable A contains NUL"),
        (ENTRY + "environment = {A = 1}\n", "environment.A must be a string, not an integer"),
        (ENTRY + 'argv = "${SCRIPT_NAME} ${QUERY}"\n', "argv: unknown placeholder ${QUERY}"),
        (ENTRY + 'argv = ["a"]\n', "argv must be a string, not an array"),
        (
            ENTRY + 'allowed_hosts = "https://x"\n',
            "allowed_hosts must be an array of strings, not a string",
        ),
        (ENTRY + 'allowed_hosts = ["a", 1]\n', "allowed_hosts must hold non-empty strings"),
        (
            ENTRY + "http_max_concurrency = 0\n",
            "http_max_concurrency must be a positive integer, got 0",
        ),
        (
            ENTRY + 'http_max_concurrency = "4"\n',
            "http_max_concurrency must be a positive integer, not a string",
        ),
        (
            ENTRY + "http_max_concurrency = true\n",
            "http_max_concurrency must be a positive integer, not a boolean",
        ),
        (ENTRY + 'timeout = "soon"\n', "timeout: invalid duration 'soon'"),
        (ENTRY + "timeout = 0\n", "timeout: invalid duration 0: must be greater than zero"),
        (ENTRY + "timeout = true\n", 'timeout must be a duration such as "30s", not a boolean'),
        (ENTRY + "timeout = [1]\n", 'timeout must be a duration such as "30s", not an array'),
        (ENTRY + 'max_memory = "lots"\n', "max_memory: invalid size 'lots'"),
        (ENTRY + "max_memory = 1.5\n", 'max_memory must be a size such as "64MiB", not a float'),
        (ENTRY + "max_request_body = -1\n", "max_request_body: invalid size -1"),
        (
            ENTRY + "max_response_body = 1979-05-27\n",
            'max_response_body must be a size such as "64MiB", not a date/time',
        ),
        (ENTRY + "fuel = 0\n", "fuel must be a positive integer, got 0"),
        (ENTRY + 'fuel = "100"\n', "fuel must be a positive integer, not a string"),
    ],
)
def test_errors_are_one_line_naming_the_entry(site: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_manifest(text, base_dir=site)
    error = str(info.value)
    assert "\n" not in error
    assert error.startswith("modules.toml: ")
    assert message in error
    # Only paths the user wrote appear: never the resolved site folder.
    assert str(site) not in error


def test_load_errors_name_the_file_as_given(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(site)
    with pytest.raises(ConfigError, match=r"^missing\.toml: cannot read file: No such file"):
        load_manifest("missing.toml")
    (site / "bad.toml").write_bytes(b'\xff[[module]]\nroute = "/"\n')
    with pytest.raises(ConfigError, match=r"^bad\.toml: not valid UTF-8$"):
        load_manifest("bad.toml")
    (site / "sub").mkdir()
    (site / "sub" / "modules.toml").write_text('[[module]]\nroute = "/"\nmodule = "hello.wasm"\n')
    with pytest.raises(
        ConfigError,
        match=re.escape(
            'sub/modules.toml: module #1 (route "/"): module file not found: hello.wasm'
        ),
    ):
        load_manifest("sub/modules.toml")


# --- environment files and assignments ----------------------------------------------------------


def test_load_env_file(tmp_path: Path) -> None:
    path = tmp_path / "env.txt"
    path.write_text(
        "# comment\n"
        "\n"
        "PLAIN=value\n"
        'TEST_NAME = "test value"\n'
        "SINGLE='it''s'\n"
        "export EXPORTED=yes\n"
        "EMPTY=\n"
        "EQUALS=a=b=c\n"
        "SPACES =  padded  \n"
        '  INDENTED="  kept  "\n'
        "HASH=a # not a comment\n"
        'ONE_QUOTE="unbalanced\n'
        "PLAIN=overridden\r\n"
    )
    assert load_env_file(path) == {
        "PLAIN": "overridden",
        "TEST_NAME": "test value",
        "SINGLE": "it''s",
        "EXPORTED": "yes",
        "EMPTY": "",
        "EQUALS": "a=b=c",
        "SPACES": "padded",
        "INDENTED": "  kept  ",
        "HASH": "a # not a comment",
        "ONE_QUOTE": '"unbalanced',
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("A=1\nJUST_A_WORD\n", "line 2: expected KEY=VALUE"),
        ("A=1\n\n# c\n=value\n", 'line 4: invalid environment variable name ""'),
        ("1ABC=x\n", 'line 1: invalid environment variable name "1ABC"'),
        ("A B=x\n", 'line 1: invalid environment variable name "A B"'),
        ("A=x\x00y\n", "line 1: environment variable A contains NUL"),
    ],
)
def test_env_file_errors_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "env.txt"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_env_file(path)
    assert str(info.value).startswith(f"{path} {message}")
    assert "\n" not in str(info.value)


def test_env_file_unreadable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read file"):
        load_env_file(tmp_path / "missing.env")
    (tmp_path / "bad.env").write_bytes(b"A=\xff\n")
    with pytest.raises(ConfigError, match="not valid UTF-8"):
        load_env_file(tmp_path / "bad.env")


@pytest.mark.parametrize(
    ("text", "pair"),
    [
        ("K=V", ("K", "V")),
        ("K=", ("K", "")),
        ("K==", ("K", "=")),
        ("K= spaced value ", ("K", " spaced value ")),
        ('K="quoted"', ("K", '"quoted"')),
        ("_under_score1=x", ("_under_score1", "x")),
    ],
)
def test_parse_env_assignment(text: str, pair: tuple[str, str]) -> None:
    assert parse_env_assignment(text) == pair


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("K", "expected KEY=VALUE"),
        ("", "expected KEY=VALUE"),
        ("=V", "invalid environment variable name"),
        ("K K=V", "invalid environment variable name"),
        ("K =V", "invalid environment variable name"),
        ("9K=V", "invalid environment variable name"),
        ("K=a\x00", "contains NUL"),
    ],
)
def test_parse_env_assignment_errors(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_env_assignment(text)
