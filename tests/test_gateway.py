"""`wasmgate serve` end to end: a real server on loopback, real HTTP, guests built from source."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from gateway_support import Server, exchange, free_port, port_of, running_server, wat_guest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "wagi"
Guest = Callable[[str], Path]


def _build_examples() -> None:
    subprocess.run([sys.executable, str(EXAMPLES / "build.py")], check=True, capture_output=True)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, guest: Guest) -> Path:
    """A folder with example guests, failure guests and a modules.toml routing to all of them."""
    _build_examples()
    d = tmp_path_factory.mktemp("site")
    for name in ("hello", "echo", "env", "api", "static", "routes"):
        shutil.copy(EXAMPLES / f"{name}.wasm", d / f"{name}.wasm")
    shutil.copytree(EXAMPLES / "public", d / "public")
    shutil.copy(guest("sleeper"), d / "sleeper.wasm")
    guests = {
        "trap": wat_guest(trap=True),
        "exit1": wat_guest(exit_code=1),
        "exit0": wat_guest(b"Content-Type: text/plain\n\nexited cleanly\n", exit_code=0),
        "empty": wat_guest(b""),
        "notype": wat_guest(b"X-Thing: 1\n\nbody\n"),
        "badstatus": wat_guest(b"Status: 99999\nContent-Type: text/plain\n\nx"),
        "status404": wat_guest(b"Status: 404 Not Found\nContent-Type: text/plain\n\nnope\n"),
        "status204": wat_guest(b"Status: 204 No Content\nContent-Type: text/plain\n\nlost\n"),
        "location": wat_guest(b"Location: /hello\n\n"),
        "cookies": wat_guest(b"Content-Type: text/plain\nSet-Cookie: a=1\nSet-Cookie: b=2\n\nc"),
        "split": wat_guest(b"Content-Type: text/plain\nX-Evil: a\rSet-Cookie: pwned=1\n\nx"),
        "badname": wat_guest(b"Content-Type: text/plain\nBad Name: x\n\nx"),
        "noblank": wat_guest(b"Content-Type: text/plain\n"),
        "binary": wat_guest(b"Content-Type: application/octet-stream\n\n\x00\x01\r\n\xff"),
        "loop": wat_guest(loop=True),
        "big": wat_guest(b"x" * 1000, repeat=5000),
        "stderr": wat_guest(b"Content-Type: text/plain\n\nok\n", stderr=b"guest says hi\n"),
        "noimport": wat_guest(extra_import=True),
    }
    for name, text in guests.items():
        (d / f"{name}.wat").write_text(text)
    entries = [
        ("/hello", "hello.wasm", ""),
        ("/echo", "echo.wasm", ""),
        ("/env/...", "env.wasm", 'environment = { GREETING = "hi", SERVER_NAME = "spoof" }'),
        ("/api/...", "api.wasm", ""),
        ("/routes", "routes.wasm", ""),
        ("/files/...", "static.wasm", 'volumes = { "/static" = "public" }'),
        ("/argv/...", "env.wasm", 'argv = "${SCRIPT_NAME} fixed ${ARGS}"'),
        ("/loop", "loop.wat", 'timeout = "300ms"'),
        ("/fuel", "loop.wat", "fuel = 100000"),
        ("/big", "big.wat", 'max_response_body = "1MiB"'),
        ("/small-body", "echo.wasm", 'max_request_body = "1KiB"'),
        ("/sleep", "sleeper.wasm", 'timeout = "500ms"\nargv = "sleeper 30"'),
    ]
    entries += [(f"/{name}", f"{name}.wat", "") for name in guests if name not in ("loop", "big")]
    toml = "".join(
        f'[[module]]\nroute = "{route}"\nmodule = "{module}"\n{extra}\n\n'
        for route, module, extra in entries
    )
    (d / "modules.toml").write_text(toml)
    return d


@pytest.fixture(scope="module")
def server(site: Path) -> Iterator[Server]:
    with running_server(
        site / "modules.toml",
        "-e",
        "GLOBAL_VAR=g",
        "--log-dir",
        str(site / "logs"),
        "--metrics-listen",
        f"127.0.0.1:{free_port()}",
    ) as s:
        yield s


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base, timeout=30) as c:
        yield c


def env_of(response: httpx.Response) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in response.text.splitlines():
        line = line.strip()
        if "=" in line and not line.startswith("argv"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


# --- routing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/healthz", 200),
        ("/hello", 200),
        ("/hello/", 404),
        ("/hellox", 404),
        ("/env", 200),
        ("/env/", 200),
        ("/env/a/b", 200),
        ("/envy", 404),
        ("/nowhere", 404),
    ],
)
def test_routing(client: httpx.Client, path: str, status: int) -> None:
    assert client.get(path).status_code == status


def test_healthz(client: httpx.Client) -> None:
    r = client.get("/healthz")
    assert r.text == "OK"


def test_dynamic_routes(client: httpx.Client) -> None:
    r = client.get("/routes/hello")
    assert r.status_code == 200
    assert "hello" in r.text
    assert client.get("/routes/goodbye/anything").status_code == 200
    assert client.get("/routes").status_code == 200


# --- CGI environment -------------------------------------------------------------------------


def test_cgi_environment(client: httpx.Client, server: Server) -> None:
    r = client.post(
        "/env/some/p%61th?x=1&y=%20",
        content=b"data",
        headers={
            "Content-Type": "text/x-demo",
            "X-Custom": "v",
            "X_Spoof": "bad",
            "Authorization": "Bearer secret",
            "Host": "example.test:8080",
        },
    )
    assert r.status_code == 200
    env = env_of(r)
    port = server.base.rsplit(":", 1)[1]
    assert env["REQUEST_METHOD"] == "POST"
    assert env["CONTENT_TYPE"] == "text/x-demo"
    assert env["CONTENT_LENGTH"] == "4"
    assert env["QUERY_STRING"] == "x=1&y=%20"
    assert env["SCRIPT_NAME"] == "/env"
    assert env["PATH_INFO"] == "/some/path"
    assert env["X_RAW_PATH_INFO"] == "/some/p%61th"
    assert env["X_MATCHED_ROUTE"] == "/env/..."
    assert env["X_FULL_URL"] == "http://example.test:8080/env/some/p%61th?x=1&y=%20"
    assert env["SERVER_NAME"] == "example.test"
    assert env["SERVER_PORT"] == "8080"
    assert env["GATEWAY_INTERFACE"] == "CGI/1.1"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["HTTP_X_CUSTOM"] == "v"
    assert env["GREETING"] == "hi"
    assert env["GLOBAL_VAR"] == "g"
    assert "HTTP_AUTHORIZATION" not in env
    assert "HTTP_X_SPOOF" not in env
    assert "secret" not in r.text
    assert "HOME" not in env
    assert "PATH" not in env
    assert port  # the default host is only used without a Host header


def test_cgi_variables_win_over_configured_env(client: httpx.Client) -> None:
    env = env_of(client.get("/env/x"))
    assert env["SERVER_NAME"] != "spoof"


def test_argv_default_and_template(client: httpx.Client) -> None:
    r = client.get("/env/q?a=1&b=2")
    assert "/env/q" in r.text
    assert "a=1" in r.text
    r = client.get("/argv/x?one&two")
    lines = [ln.strip() for ln in r.text.splitlines() if ln.strip().startswith("argv[")]
    assert [ln.split("=", 1)[1].strip() for ln in lines] == ["/argv", "fixed", "one", "two"]


# --- bodies and volumes ----------------------------------------------------------------------


def test_binary_body_round_trip(client: httpx.Client) -> None:
    body = bytes(range(256)) * 4096  # 1 MiB, every byte value, CR/LF included
    r = client.post("/echo", content=body, headers={"Content-Type": "application/x-bin"})
    assert r.status_code == 200
    assert r.content == body
    assert r.headers["content-type"] == "application/x-bin"


def test_binary_response_is_byte_exact(client: httpx.Client) -> None:
    assert client.get("/binary").content == b"\x00\x01\r\n\xff"


def test_static_files_over_a_volume(client: httpx.Client, site: Path) -> None:
    r = client.get("/files/hello.txt")
    assert r.status_code == 200
    assert r.content == (site / "public" / "hello.txt").read_bytes()
    assert client.get("/files/missing.txt").status_code == 404
    assert client.get("/files/%2e%2e/modules.toml").status_code in (400, 404)


def test_json_api(client: httpx.Client) -> None:
    assert client.get("/api/add?a=2&b=40").json() == {"sum": 42}


# --- response parsing ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/exit0", 200),
        ("/status404", 404),
        ("/location", 302),
        ("/badstatus", 502),
        ("/split", 502),
        ("/badname", 502),
        ("/noblank", 502),
        ("/notype", 500),
        ("/empty", 500),
    ],
)
def test_response_rules(client: httpx.Client, path: str, status: int) -> None:
    r = client.get(path, follow_redirects=False)
    assert r.status_code == status
    assert "pwned" not in r.headers.get("set-cookie", "")


def test_a_204_has_no_content_length_nor_body(server: Server) -> None:
    """RFC 9110 8.6: no Content-Length in a 204. The same whether it is answered at once (a GET)
    or through ASGI (a POST: it has a body to read); the connection stays usable after it."""
    get = b"GET /status204 HTTP/1.1\r\nHost: x\r\n\r\n"
    post = b"POST /status204 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"
    after = b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    got = exchange(port_of(server), get + post + after, timeout=10)
    # Nothing of a body between the responses: the third parses right after the two heads.
    assert [r.status for r in got.responses] == [204, 204, 200], got.raw
    for response in got.responses[:2]:
        assert response.header("content-length") is None
        assert response.body == b""
    assert got.responses[2].body == b"Hello from WebAssembly!\n"
    assert got.rest == b""


def test_repeated_headers_are_kept(client: httpx.Client) -> None:
    r = client.get("/cookies")
    assert r.headers.get_list("set-cookie") == ["a=1", "b=2"]


def test_location_redirect(client: httpx.Client) -> None:
    r = client.get("/location", follow_redirects=False)
    assert r.headers["location"] == "/hello"


# --- failures --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status", "cause"),
    [
        ("/trap", 500, "trap"),
        ("/exit1", 500, "exit"),
        ("/noimport", 500, "link"),
        ("/loop", 504, "timeout"),
        ("/fuel", 500, "fuel"),
        ("/big", 502, "too-large"),
    ],
)
def test_guest_failures(
    client: httpx.Client, server: Server, path: str, status: int, cause: str
) -> None:
    r = client.get(path)
    assert r.status_code == status
    assert r.content == b""
    line = f'"path":"{path}","route":"{path}","status":{status},"cause":"{cause}"'
    _wait_for(lambda: line in server.output(), timeout=5)  # access lines come in batches


def test_failure_reasons_are_logged(client: httpx.Client, server: Server) -> None:
    client.get("/trap")
    time.sleep(0.05)
    assert "module #" in server.output()
    assert "guest trapped" in server.output()


def test_blocked_guest_times_out(client: httpx.Client) -> None:
    started = time.monotonic()
    r = client.get("/sleep")
    assert r.status_code == 504
    assert time.monotonic() - started < 5


def test_request_body_limit(client: httpx.Client) -> None:
    assert client.post("/small-body", content=b"x" * 1024).status_code == 200
    assert client.post("/small-body", content=b"x" * 1025).status_code == 413

    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b"y" * 200

    assert client.post("/small-body", content=chunks()).status_code == 413


def test_guest_stderr_goes_to_logs_not_response(
    client: httpx.Client, server: Server, site: Path
) -> None:
    r = client.get("/stderr")
    assert r.text == "ok\n"
    time.sleep(0.05)
    assert "guest says hi" in server.output()
    logs = list((site / "logs").glob("*.stderr.log"))
    assert any("guest says hi" in p.read_text() for p in logs)


def test_a_guest_that_reads_no_environment_is_refused_bad_requests_alike(
    server: Server, site: Path
) -> None:
    """hello.c never reads its environment, so none is built for it (``check_request`` instead of
    ``build_environ``): a bad request is refused all the same."""
    import wasmtime

    module = wasmtime.Module.from_file(wasmtime.Engine(), str(site / "hello.wasm"))
    assert not {i.name for i in module.imports} & {"environ_get", "environ_sizes_get"}
    for host in (b"Host: a b\r\n", b"Host: a\r\nHost: b\r\n"):
        request = b"GET /hello HTTP/1.1\r\n" + host + b"Connection: close\r\n\r\n"
        got = exchange(port_of(server), request, timeout=10)
        assert [r.status for r in got.responses] == [400], got.raw


def test_server_survives_and_serves_after_failures(client: httpx.Client) -> None:
    for path in ("/trap", "/loop", "/big", "/empty"):
        client.get(path)
    assert client.get("/hello").status_code == 200


def test_concurrent_requests(client: httpx.Client, server: Server) -> None:
    results: list[int] = []

    def hit() -> None:
        with httpx.Client(base_url=server.base, timeout=30) as c:
            for _ in range(10):
                results.append(c.get("/hello").status_code)

    threads = [threading.Thread(target=hit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 80


def test_metrics(client: httpx.Client, server: Server) -> None:
    client.get("/hello")
    port = next(
        a
        for a in server.proc.args
        if isinstance(a, str) and a.startswith("127.0.0.1:")  # type: ignore[union-attr]
    )
    del port
    text = server.output()
    assert "metrics on http://" in text
    url = text.split("metrics on ", 1)[1].split()[0]
    m = httpx.get(url, timeout=5).text
    assert 'wasmgate_requests_total{route="/hello",status="200"}' in m
    assert "wasmgate_in_flight" in m
    assert "wasmgate_request_duration_seconds_bucket" in m


# --- saturation, reload, start-up --------------------------------------------------------------


def test_saturation_gives_503_with_retry_after(site: Path, tmp_path: Path) -> None:
    shutil.copy(site / "sleeper.wasm", tmp_path / "sleeper.wasm")
    (tmp_path / "modules.toml").write_text(
        '[[module]]\nroute = "/slow"\nmodule = "sleeper.wasm"\nargv = "sleeper 1"\n'
        'timeout = "10s"\n'
    )
    with running_server(tmp_path / "modules.toml", "--threads", "1", "--queue", "0") as s:
        slow = threading.Thread(target=lambda: httpx.get(s.base + "/slow", timeout=30))
        slow.start()
        time.sleep(0.3)
        r = httpx.get(s.base + "/slow", timeout=30)
        slow.join()
        assert r.status_code == 503
        assert r.headers["retry-after"] == "1"
        assert httpx.get(s.base + "/healthz").status_code == 200


def test_reload_on_sighup_and_broken_config_keeps_old(site: Path, tmp_path: Path) -> None:
    shutil.copy(site / "hello.wasm", tmp_path / "hello.wasm")
    toml = tmp_path / "modules.toml"
    toml.write_text('[[module]]\nroute = "/a"\nmodule = "hello.wasm"\n')
    with running_server(toml) as s:
        assert httpx.get(s.base + "/a").status_code == 200
        assert httpx.get(s.base + "/b").status_code == 404
        toml.write_text('[[module]]\nroute = "/b"\nmodule = "hello.wasm"\n')
        s.proc.send_signal(signal.SIGHUP)
        _wait_for(lambda: httpx.get(s.base + "/b").status_code == 200)
        assert httpx.get(s.base + "/a").status_code == 404
        toml.write_text('[[module]]\nroute = "/c"\nmodule = "missing.wasm"\n')
        s.proc.send_signal(signal.SIGHUP)
        _wait_for(lambda: "reload failed" in s.output())
        assert httpx.get(s.base + "/b").status_code == 200


def test_watch_reloads_changed_module(site: Path, tmp_path: Path) -> None:
    (tmp_path / "m.wat").write_text(wat_guest(b"Content-Type: text/plain\n\nv1"))
    toml = tmp_path / "modules.toml"
    toml.write_text('[[module]]\nroute = "/v"\nmodule = "m.wat"\n')
    with running_server(toml, "--watch") as s:
        assert httpx.get(s.base + "/v").text == "v1"
        time.sleep(1.1)
        (tmp_path / "m.wat").write_text(wat_guest(b"Content-Type: text/plain\n\nv2"))
        _wait_for(lambda: httpx.get(s.base + "/v").text == "v2")


def test_no_request_lost_during_reload(site: Path, tmp_path: Path) -> None:
    shutil.copy(site / "hello.wasm", tmp_path / "hello.wasm")
    toml = tmp_path / "modules.toml"
    toml.write_text('[[module]]\nroute = "/a"\nmodule = "hello.wasm"\n')
    with running_server(toml) as s:
        statuses: list[int] = []
        stop = threading.Event()

        def load() -> None:
            with httpx.Client(base_url=s.base, timeout=30) as c:
                while not stop.is_set():
                    statuses.append(c.get("/a").status_code)

        t = threading.Thread(target=load)
        t.start()
        for _ in range(5):
            s.proc.send_signal(signal.SIGHUP)
            time.sleep(0.2)
        stop.set()
        t.join()
        assert statuses
        assert set(statuses) == {200}


def _wait_for(cond: Callable[[], bool], timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[[module]\n", "modules.toml"),
        ('[[module]]\nroute = "/x"\nmodule = "missing.wasm"\n', "missing.wasm"),
        ('[[module]]\nroute = "no-slash"\nmodule = "hello.wasm"\n', "route"),
        ('[[module]]\nroute = "/x"\nmodule = "garbage.wasm"\n', "module #1"),
        # A missing entrypoint stops start-up like a missing file (issue 12, item 14).
        (
            '[[module]]\nroute = "/x"\nmodule = "hello.wasm"\nentrypoint = "nope"\n',
            "module #1 (route \"/x\"): entrypoint 'nope' is not exported",
        ),
    ],
)
def test_startup_errors(tmp_path: Path, site: Path, toml: str, message: str) -> None:
    shutil.copy(site / "hello.wasm", tmp_path / "hello.wasm")
    (tmp_path / "garbage.wasm").write_bytes(b"\x00asm\x01\x00\x00\x00garbage")
    (tmp_path / "modules.toml").write_text(toml)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "wasmgate",
            "serve",
            "-c",
            str(tmp_path / "modules.toml"),
            "-l",
            f"127.0.0.1:{free_port()}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1
    errors = [ln for ln in r.stderr.splitlines() if "error" in ln.lower()]
    assert len(errors) == 1, r.stderr
    assert message in errors[0]
    assert "Traceback" not in r.stderr


def test_sigterm_drains_in_flight(site: Path, tmp_path: Path) -> None:
    shutil.copy(site / "sleeper.wasm", tmp_path / "sleeper.wasm")
    (tmp_path / "modules.toml").write_text(
        '[[module]]\nroute = "/slow"\nmodule = "sleeper.wasm"\nargv = "sleeper 1"\n'
    )
    with running_server(tmp_path / "modules.toml") as s:
        result: list[int] = []
        t = threading.Thread(
            target=lambda: result.append(httpx.get(s.base + "/slow", timeout=30).status_code)
        )
        t.start()
        # The request must be in a worker's hands (accepted, its guest asleep) before the stop:
        # one still in the listening queue is refused once the workers stop accepting. The guest
        # sleeps 1 s; on a loaded machine the accept can take a while.
        time.sleep(0.6)
        s.proc.send_signal(signal.SIGTERM)
        t.join()
        assert result == [200]
        assert s.proc.wait(15) == 0


def test_tls(site: Path, tmp_path: Path) -> None:
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
    shutil.copy(site / "hello.wasm", tmp_path / "hello.wasm")
    (tmp_path / "modules.toml").write_text('[[module]]\nroute = "/hello"\nmodule = "hello.wasm"\n')
    with running_server(
        tmp_path / "modules.toml", "--tls-cert", str(cert), "--tls-key", str(key), scheme="https"
    ) as s:
        r = httpx.get(s.base + "/hello", verify=False)
        assert r.status_code == 200
        assert r.text == "Hello from WebAssembly!\n"
        env_check = os.environ.get("HOME")
        assert env_check is None or env_check not in r.text


def test_several_workers_share_the_socket_reload_and_drain(site: Path, tmp_path: Path) -> None:
    shutil.copy(site / "env.wasm", tmp_path / "env.wasm")
    shutil.copy(site / "sleeper.wasm", tmp_path / "sleeper.wasm")
    toml = tmp_path / "modules.toml"
    toml.write_text(
        '[[module]]\nroute = "/a/..."\nmodule = "env.wasm"\n\n'
        '[[module]]\nroute = "/slow"\nmodule = "sleeper.wasm"\nargv = "sleeper 1"\n'
    )
    mport = free_port()
    with running_server(toml, "--workers", "2", "--metrics-listen", f"127.0.0.1:{mport}") as s:
        # Both workers up (the server answers as soon as one is).
        _wait_for(lambda: s.output().count("Application startup complete") >= 2)
        pids = set()
        with httpx.Client(base_url=s.base, timeout=30) as c:
            for _ in range(40):
                r = c.get("/a/x", headers={"Connection": "close"})
                assert r.status_code == 200
        # A worker's counts reach the master's scrape within the metrics' flush period.
        total = 'wasmgate_requests_total{route="/a/...",status="200"} 40.0'
        _wait_for(lambda: total in httpx.get(f"http://127.0.0.1:{mport}/metrics").text)
        pids = {ln.split("[worker ")[1][0] for ln in s.output().splitlines() if "[worker " in ln}
        assert pids == {"0", "1"}
        toml.write_text('[[module]]\nroute = "/b/..."\nmodule = "env.wasm"\n')
        s.proc.send_signal(signal.SIGHUP)
        _wait_for(
            lambda: all(
                httpx.get(s.base + "/b/x", headers={"Connection": "close"}).status_code == 200
                for _ in range(10)
            )
        )
        toml.write_text(
            '[[module]]\nroute = "/slow"\nmodule = "sleeper.wasm"\nargv = "sleeper 1"\n'
        )
        s.proc.send_signal(signal.SIGHUP)
        _wait_for(lambda: s.output().count("reloaded") >= 4)
        result: list[int] = []
        t = threading.Thread(
            target=lambda: result.append(httpx.get(s.base + "/slow", timeout=30).status_code)
        )
        t.start()
        # The request must be in a worker's hands (accepted, its guest asleep) before the stop:
        # one still in the listening queue is refused once the workers stop accepting. The guest
        # sleeps 1 s; on a loaded machine the accept can take a while.
        time.sleep(0.6)
        s.proc.send_signal(signal.SIGTERM)
        t.join()
        assert result == [200]
        assert s.proc.wait(15) == 0


def test_workers_share_a_burst_of_keep_alive_connections(site: Path, tmp_path: Path) -> None:
    # Clients that keep their connections must not all land on one worker (on Linux each worker
    # listens on its own SO_REUSEPORT socket and the kernel spreads the connections).
    shutil.copy(site / "hello.wasm", tmp_path / "hello.wasm")
    toml = tmp_path / "modules.toml"
    toml.write_text('[[module]]\nroute = "/hello"\nmodule = "hello.wasm"\n')
    with running_server(toml, "--workers", "2") as s:
        _wait_for(lambda: s.output().count("Application startup complete") >= 2)
        port = int(s.base.rsplit(":", 1)[1])
        conns = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(24)]
        try:
            for c in conns:
                c.sendall(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
            for c in conns:
                assert c.recv(65536).startswith(b"HTTP/1.1 200")
        finally:
            for c in conns:
                c.close()
        _wait_for(lambda: s.output().count('"route":"/hello"') >= 24)
        lines = [ln for ln in s.output().splitlines() if '"route":"/hello"' in ln]
        by_worker = {w: sum(f"[worker {w}]" in ln for ln in lines) for w in ("0", "1")}
        assert min(by_worker.values()) >= 3, by_worker


# --- inline runs -------------------------------------------------------------------------------


def _access(s: Server, route: str) -> list[str]:
    return [ln for ln in s.output().splitlines() if f'"route":"{route}"' in ln]


def test_quick_repeatable_routes_run_inline_and_others_on_threads(
    site: Path, tmp_path: Path
) -> None:
    for name in ("hello", "static"):
        shutil.copy(site / f"{name}.wasm", tmp_path / f"{name}.wasm")
    shutil.copytree(site / "public", tmp_path / "public")
    toml = tmp_path / "modules.toml"
    toml.write_text(
        '[[module]]\nroute = "/hello"\nmodule = "hello.wasm"\n\n'
        '[[module]]\nroute = "/files/..."\nmodule = "static.wasm"\n'
        'volumes = { "/static" = "public" }\n'
    )
    with running_server(toml) as s:
        for _ in range(3):
            assert httpx.get(s.base + "/hello").text == "Hello from WebAssembly!\n"
            assert httpx.get(s.base + "/files/index.html").status_code == 200
        _wait_for(lambda: len(_access(s, "/files/...")) == 3)
        assert all('"inline":true' in ln for ln in _access(s, "/hello"))
        # A volume makes a run visible outside the guest: never run twice, never inline.
        assert all('"inline":false' in ln for ln in _access(s, "/files/..."))


def test_answers_at_once_are_framed_logged_and_counted_as_asgi_ones(
    site: Path, tmp_path: Path
) -> None:
    """A bodyless request for an inline route is answered without ASGI (``answer_now``): the same
    response, access log line and metrics; a failed guest's status, and a guest's stderr, go
    out through the ASGI path (``_answer``) after the run, as before."""
    shutil.copy(site / "hello.wasm", tmp_path / "hello.wasm")
    for name in ("trap", "stderr"):
        shutil.copy(site / f"{name}.wat", tmp_path / f"{name}.wat")
    toml = tmp_path / "modules.toml"
    toml.write_text(
        "".join(
            f'[[module]]\nroute = "/{name}"\nmodule = "{module}"\n\n'
            for name, module in (
                ("hello", "hello.wasm"),
                ("trap", "trap.wat"),
                ("stderr", "stderr.wat"),
            )
        )
    )
    metrics = free_port()
    with running_server(toml, "--metrics-listen", f"127.0.0.1:{metrics}") as s:
        with httpx.Client(base_url=s.base) as c:
            got = c.get("/hello")
            assert (got.status_code, got.text) == (200, "Hello from WebAssembly!\n")
            assert got.headers["content-length"] == "24"
            assert "date" in got.headers
            head = c.head("/hello")
            assert (head.status_code, head.content) == (200, b"")
            assert head.headers["content-length"] == "24"
            assert c.get("/trap").status_code == 500
            assert c.get("/stderr").text == "ok\n"
        _wait_for(lambda: "guest says hi" in s.output())
        _wait_for(lambda: len(_access(s, "/hello")) == 2)
        lines = _access(s, "/hello")
        assert all('"inline":true' in ln and '"status":200' in ln for ln in lines)
        assert '"bytes_out":24' in lines[0]
        _wait_for(lambda: len(_access(s, "/trap")) == 1)
        assert '"status":500' in _access(s, "/trap")[0]
        text = httpx.get(f"http://127.0.0.1:{metrics}/metrics").text
        assert 'route="/hello",status="200"} 2.0' in text


def test_a_guest_over_the_inline_budget_runs_again_in_full_on_a_thread(
    site: Path, tmp_path: Path
) -> None:
    shutil.copy(site / "sleeper.wasm", tmp_path / "sleeper.wasm")
    toml = tmp_path / "modules.toml"
    toml.write_text('[[module]]\nroute = "/nap"\nmodule = "sleeper.wasm"\nargv = "sleeper 1"\n')
    with running_server(toml) as s:
        started = time.monotonic()
        r = httpx.get(s.base + "/nap", timeout=30)
        # The inline run's sleep was cut at the budget; the answer is the full run's.
        assert r.status_code == 200
        assert r.text == "awake\n"
        assert time.monotonic() - started >= 1.0
        _wait_for(lambda: "overran the inline budget" in s.output())
        assert httpx.get(s.base + "/nap", timeout=30).text == "awake\n"
        _wait_for(lambda: len(_access(s, "/nap")) == 2)
        assert all('"inline":false' in ln for ln in _access(s, "/nap"))
        assert '"cause":"over-budget"' not in s.output()


def test_no_inline_keeps_every_guest_on_threads(site: Path, tmp_path: Path) -> None:
    shutil.copy(site / "hello.wasm", tmp_path / "hello.wasm")
    toml = tmp_path / "modules.toml"
    toml.write_text('[[module]]\nroute = "/hello"\nmodule = "hello.wasm"\n')
    with running_server(toml, "--no-inline") as s:
        for _ in range(3):
            assert httpx.get(s.base + "/hello").status_code == 200
        _wait_for(lambda: len(_access(s, "/hello")) == 3)
        assert all('"inline":false' in ln for ln in _access(s, "/hello"))
