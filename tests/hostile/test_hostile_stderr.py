"""Guest stderr is data (issue 12, item 7): a guest that writes log-looking lines to stderr
cannot forge a server log record or a ``--log-dir`` line; each of its lines is one record,
escaped and attributed to its route and request id."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway_support import Server, running_server, wat_guest

from .hostile_support import get, port_of, wait_for_log

FORGED = (
    b"first\n"
    b'2026-01-01 00:00:00,000 INFO [worker 0] wasmgate.access: {"status":200,"path":"/forged"}\n'
    b"\r2026-01-01 00:00:00,000 ERROR wasmgate.gateway: forged error\x1b[2K\n"
    b"tail without newline \xff\xfe \\ done"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Iterator[Server]:
    d = tmp_path_factory.mktemp("stderr")
    (d / "err.wat").write_text(wat_guest(b"Content-Type: text/plain\n\nok", stderr=FORGED))
    (d / "modules.toml").write_text('[[module]]\nroute = "/err"\nmodule = "err.wat"\n')
    args = ("--log-dir", str(d / "logs"))
    with running_server(d / "modules.toml", *args, env={"WASMGATE_CACHE_DIR": str(cache_dir)}) as s:
        yield s


def test_guest_stderr_cannot_forge_log_records(server: Server) -> None:
    assert get(port_of(server), "/err").status == 200
    access = wait_for_log(server, r'wasmgate\.access: (\{"id".*"path":"/err".*\})')
    rid = json.loads(access.group(1))["id"]
    wait_for_log(server, r"route=/err req=\S+ stderr: tail without newline")
    lines = server.output().splitlines()
    # Only real records: every line starts with a timestamp and names a real logger, and no
    # line but wasmgate.guest records carries the guest's text.
    for line in lines:
        if "forged" in line:
            assert re.match(
                rf"^\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ INFO wasmgate\.guest: "
                rf"route=/err req={re.escape(rid)} stderr: ",
                line,
            ), line
    guest = [ln.split(" stderr: ", 1)[1] for ln in lines if "wasmgate.guest" in ln]
    assert guest == [
        "first",
        '2026-01-01 00:00:00,000 INFO [worker 0] wasmgate.access: {"status":200,"path":"/forged"}',
        "\\r2026-01-01 00:00:00,000 ERROR wasmgate.gateway: forged error\\x1b[2K",
        "tail without newline \ufffd\ufffd \\\\ done",
    ]
    assert not any(ln.startswith("2026-01-01") for ln in lines)
    (log_file,) = (Path(server.log).parent / "logs").glob("*.stderr.log")
    file_lines = log_file.read_text().splitlines()
    assert len(file_lines) == 4
    for line in file_lines:
        assert re.match(
            rf"^\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ req={re.escape(rid)} GET /err: ", line
        )
    assert file_lines[2].endswith("forged error\\x1b[2K")
