"""Operations (issue 12, items 9, 10, 11, 13): gateway-answered responses counted by status and
cause, reloads counted once, ``--hostname`` pinning the public name, ``max_response_body``
measuring the body alone, and the access log under an ASGI host that configured no logging."""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from guestbuild import build

from gateway_support import free_port, running_server, wat_guest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "wagi"


def _site(tmp_path: Path) -> Path:
    shutil.copy(build(EXAMPLES / "env.c"), tmp_path / "env.wasm")
    (tmp_path / "hi.wat").write_text(wat_guest(b"Content-Type: text/plain\n\nhi"))
    headers = b"".join(b"X-Pad-%d: %s\n" % (i, b"p" * 100) for i in range(20))  # ~2 KiB
    body = b"b" * 1024
    (tmp_path / "fat.wat").write_text(
        wat_guest(b"Content-Type: text/plain\n" + headers + b"\n" + body)
    )
    toml = tmp_path / "modules.toml"
    toml.write_text(
        '[[module]]\nroute = "/env/..."\nmodule = "env.wasm"\n\n'
        '[[module]]\nroute = "/hi"\nmodule = "hi.wat"\n\n'
        '[[module]]\nroute = "/fat"\nmodule = "fat.wat"\nmax_response_body = "1KiB"\n'
    )
    return toml


def _raw(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except OSError:
            pass
    return out


def _metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
        if found == labels:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_gateway_answers_are_counted_by_status_and_cause(tmp_path: Path) -> None:
    toml = _site(tmp_path)
    mport = free_port()
    args = ("--metrics-listen", f"127.0.0.1:{mport}", "--header-timeout", "1s")
    with running_server(toml, *args) as s:
        port = int(s.base.rsplit(":", 1)[1])
        assert _raw(port, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n").startswith(
            b"HTTP/1.1 414"
        )
        huge = b"GET /hi HTTP/1.1\r\nHost: x\r\nX-Big: " + b"h" * 70000 + b"\r\n\r\n"
        assert _raw(port, huge).startswith(b"HTTP/1.1 431")
        assert _raw(port, b"GARBAGE\x01\r\n\r\n").startswith(b"HTTP/1.1 400")
        assert _raw(port, b"GET /hi HTTP/1.1\r\n", timeout=5).startswith(b"HTTP/1.1 408")
        assert _raw(port, b"GET /hi HTTP/1.1\r\nConnection: close\r\n\r\n").startswith(
            b"HTTP/1.1 400"
        )
        assert httpx.get(s.base + "/nope").status_code == 404
        time.sleep(0.3)
        text = httpx.get(f"http://127.0.0.1:{mport}/metrics", timeout=5).text
    name = "wasmgate_gateway_responses_total"
    assert _metric(text, name, cause="url-too-long", status="414") == 1
    assert _metric(text, name, cause="head-too-large", status="431") == 1
    assert _metric(text, name, cause="bad-request", status="400") == 1
    assert _metric(text, name, cause="head-timeout", status="408") == 1
    assert _metric(text, name, cause="missing-host", status="400") == 1
    assert _metric(text, name, cause="no-route", status="404") == 1


def test_reloads_are_counted_once_per_reload(tmp_path: Path) -> None:
    """Item 10: with two workers, one SIGHUP counted two reloads."""
    toml = _site(tmp_path)
    mport = free_port()
    with running_server(toml, "--workers", "2", "--metrics-listen", f"127.0.0.1:{mport}") as s:
        s.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while s.output().count("reloaded: serving") < 2:  # both workers took it
            assert time.monotonic() < deadline, s.output()[-2000:]
            time.sleep(0.1)
        text = httpx.get(f"http://127.0.0.1:{mport}/metrics", timeout=5).text
    assert _metric(text, "wasmgate_reloads_total", result="ok") == 1


def _env(body: str) -> dict[str, str]:
    return dict(line.strip().split("=", 1) for line in body.splitlines() if "=" in line)


def test_hostname_pins_the_public_name(tmp_path: Path) -> None:
    """Item 11: any Host landed in SERVER_NAME/X_FULL_URL."""
    toml = _site(tmp_path)
    with running_server(toml, "--hostname", "public.example:8443") as s:
        r = httpx.get(s.base + "/env/x?q", headers={"Host": "evil.example:81"})
    env = {k.strip(): v for k, v in _env(r.text).items()}
    assert env["SERVER_NAME"] == "public.example"
    assert env["SERVER_PORT"] == "8443"
    assert env["X_FULL_URL"] == "http://public.example:8443/env/x?q"


def test_without_hostname_the_host_header_is_used(tmp_path: Path) -> None:
    toml = _site(tmp_path)
    with running_server(toml) as s:
        r = httpx.get(s.base + "/env/x", headers={"Host": "site.example:81"})
    env = {k.strip(): v for k, v in _env(r.text).items()}
    assert env["X_FULL_URL"] == "http://site.example:81/env/x"


def test_max_response_body_measures_the_body(tmp_path: Path) -> None:
    """Item 9: 2 KiB of headers and a 1 KiB body under max_response_body = 1KiB was 502."""
    toml = _site(tmp_path)
    with running_server(toml) as s:
        r = httpx.get(s.base + "/fat")
    assert r.status_code == 200
    assert r.content == b"b" * 1024
    assert r.headers["x-pad-19"] == "p" * 100


@pytest.mark.parametrize("extra", ["", "b"])
def test_body_over_max_response_body_is_still_refused(tmp_path: Path, extra: str) -> None:
    (tmp_path / "b.wat").write_text(
        wat_guest(b"Content-Type: text/plain\n\n" + b"b" * 1024 + extra.encode())
    )
    toml = tmp_path / "modules.toml"
    toml.write_text('[[module]]\nroute = "/b"\nmodule = "b.wat"\nmax_response_body = "1KiB"\n')
    with running_server(toml) as s:
        r = httpx.get(s.base + "/b")
    assert r.status_code == (502 if extra else 200)


HOST_SCRIPT = """
import asyncio, sys
from pathlib import Path
import httpx
from wasmgate.config import GatewayConfig
from wasmgate.gateway import create_app

app = create_app(GatewayConfig(modules_toml=Path(sys.argv[1]), threads=2))

async def main():
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        print((await c.get("/hi")).status_code)

asyncio.run(main())
app.close()
"""


def test_access_log_under_a_host_without_logging(tmp_path: Path) -> None:
    """Item 13: under gunicorn/hypercorn (which configure only their own loggers) no wasmgate
    access line appeared: INFO records met Python's last-resort handler (WARNING and up)."""
    toml = _site(tmp_path)
    r = subprocess.run(
        [sys.executable, "-c", HOST_SCRIPT, str(toml)], capture_output=True, text=True, timeout=120
    )
    assert r.stdout.strip() == "200", r.stderr
    assert re.search(
        r'INFO wasmgate\.access: \{"id":"[^"]+","method":"GET","path":"/hi"', r.stderr
    ), r.stderr


def _cert(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_tls_idle_connections_follow_the_header_timeout(tmp_path: Path) -> None:
    """Item 8: a TLS connection that never completed its handshake stayed open 60 s."""
    cert, key = _cert(tmp_path)
    toml = _site(tmp_path)
    args = ("--tls-cert", str(cert), "--tls-key", str(key), "--header-timeout", "1s")
    with running_server(toml, *args, scheme="https") as s:
        port = int(s.base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as idle:
            started = time.monotonic()
            with contextlib.suppress(ConnectionResetError):
                assert idle.recv(100) == b""
            assert time.monotonic() - started < 4
        r = httpx.get(s.base + "/hi", verify=False)
        assert r.status_code == 200
        assert r.text == "hi"
        assert (
            "http://"
            not in httpx.get(s.base + "/env/x", verify=False).text.split("X_FULL_URL=")[1][:8]
        )


def test_bad_tls_files_stop_start_up_with_one_line(tmp_path: Path) -> None:
    toml = _site(tmp_path)
    (tmp_path / "bad.pem").write_text("not a certificate\n")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "wasmgate",
            "serve",
            "-c",
            str(toml),
            "-l",
            f"127.0.0.1:{free_port()}",
            "--tls-cert",
            str(tmp_path / "bad.pem"),
            "--tls-key",
            str(tmp_path / "bad.pem"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1
    assert r.stderr.startswith("wasmgate: error: cannot load --tls-cert/--tls-key: "), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_unwritable_log_dir_warns_once_and_cache_dir_is_not_silent(tmp_path: Path) -> None:
    """Item 12: a full or unwritable --log-dir warned on every request; an unwritable cache
    directory said nothing."""
    (tmp_path / "e.wat").write_text(wat_guest(b"Content-Type: text/plain\n\nok", stderr=b"oops\n"))
    toml = tmp_path / "modules.toml"
    toml.write_text('[[module]]\nroute = "/e"\nmodule = "e.wat"\n')
    (tmp_path / "not-a-dir").write_text("a file where the log directory should be\n")
    (tmp_path / "cache-file").write_text("a file where the cache directory should be\n")
    args = (
        "--log-dir",
        str(tmp_path / "not-a-dir" / "logs"),
        "--cache-dir",
        str(tmp_path / "cache-file" / "c"),
    )
    with running_server(toml, *args) as s:
        for _ in range(3):
            assert httpx.get(s.base + "/e").status_code == 200
        deadline = time.monotonic() + 5
        while s.output().count("route=/e req=") < 3:
            assert time.monotonic() < deadline, s.output()
            time.sleep(0.05)
        out = s.output()
    assert out.count("cannot write guest logs to --log-dir") == 1, out
    assert "artifact cache directory is not writable" in out
