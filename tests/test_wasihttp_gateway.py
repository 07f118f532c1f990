"""wasi:http components as routes of `wasmgate serve`: a real server on loopback, real HTTP."""

from __future__ import annotations

import http.client
import http.server
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway_support import Server, free_port, running_server

ROOT = Path(__file__).resolve().parent.parent
HELLO = ROOT / "examples" / "perf" / "hello-http.wasm"
ECHO = ROOT / "examples" / "http" / "echo-http.wasm"
DENIED = ROOT / "tests" / "guests" / "http_denied.wat"
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def upstream() -> Iterator[int]:
    """A local HTTP server the guests may call: answers 200 and ``upstream saw PATH``."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = f"upstream saw {self.path}".encode()
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield int(httpd.server_address[1])
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, upstream: int) -> Iterator[Server]:
    d = tmp_path_factory.mktemp("http-site")
    shutil.copy(HELLO, d / "hello-http.wasm")
    shutil.copy(ECHO, d / "echo.wasm")
    (d / "foreign.wat").write_text(
        DENIED.read_text().replace("wasi:filesystem/preopens@0.2.0", "wasi:foo/bar@0.2.0")
    )
    (d / "modules.toml").write_text(
        """
[[module]]
route = "/hello"
module = "hello-http.wasm"

[[module]]
route = "/t/small/..."
module = "echo.wasm"
max_request_body = "1KiB"
max_response_body = 5000

[[module]]
route = "/t/quick/..."
module = "echo.wasm"
timeout = "300ms"

[[module]]
route = "/t/fuel/..."
module = "echo.wasm"
fuel = 100000

[[module]]
route = "/t/mem/..."
module = "echo.wasm"
max_memory = "2MiB"

[[module]]
route = "/t/out/..."
module = "echo.wasm"
allowed_hosts = ["http://127.0.0.1:UPSTREAM"]

[[module]]
route = "/foreign"
module = "foreign.wat"

[[module]]
route = "/..."
module = "echo.wasm"
environment = { GREETING = "hi" }
volumes = { "/data" = "." }
""".replace("UPSTREAM", str(upstream))
    )
    with running_server(d / "modules.toml", "--log-dir", str(d / "logs")) as s:
        yield s


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base, timeout=30) as c:
        yield c


def test_hello(client: httpx.Client) -> None:
    r = client.get("/hello")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain"
    assert r.content == b"Hello, world!\n"


@pytest.mark.parametrize("method", ["GET", "POST", "PUT"])
@pytest.mark.parametrize("size", [0, 64 * 1024, 8 * MiB])
def test_echo_bodies_byte_exact(client: httpx.Client, method: str, size: int) -> None:
    body = bytes(range(256)) * (size // 256)
    r = client.request(method, "/any/path?x=1&y=%20", content=body, headers={"x-token": "abc"})
    assert r.status_code == 200
    assert r.headers["x-method"] == method
    assert r.headers["x-path"] == "/any/path?x=1&y=%20"
    assert r.headers["x-echo-x-token"] == "abc"
    assert r.content == body


def test_environment_reaches_the_guest(client: httpx.Client) -> None:
    assert client.get("/env").content == b"GREETING=hi\n"


@pytest.mark.parametrize(
    ("path", "status", "cause"),
    [
        ("/trap", 500, "trap"),
        ("/no-response", 500, "no-response"),
        ("/set-twice", 500, "trap"),
        ("/error", 500, "guest-error"),
        ("/exit", 500, "exit"),
        ("/t/quick/spin", 504, "timeout"),
        ("/t/fuel/spin", 500, "fuel"),
        ("/t/small/big/5001", 502, "too-large"),
        ("/foreign", 500, "link"),
    ],
)
def test_failures_answer_as_wagi_routes(
    client: httpx.Client, server: Server, path: str, status: int, cause: str
) -> None:
    r = client.get(path)
    assert r.status_code == status
    assert r.content == b""
    line = f'"status":{status},"cause":"{cause}"'
    deadline = time.monotonic() + 5  # access lines are written in batches
    while line not in server.output():
        assert time.monotonic() < deadline, server.output()[-2000:]
        time.sleep(0.05)


def test_memory_limit(client: httpx.Client) -> None:
    assert client.get("/t/mem/grow").status_code == 500
    assert client.get("/t/mem/").status_code == 200


def test_request_body_limit(client: httpx.Client) -> None:
    assert client.post("/t/small/", content=b"x" * 1024).status_code == 200
    assert client.post("/t/small/", content=b"x" * 1025).status_code == 413


def test_status_and_log(client: httpx.Client, server: Server) -> None:
    assert client.get("/status/418").status_code == 418
    assert client.get("/log").status_code == 200
    time.sleep(0.05)
    assert "to the log" in server.output()


def test_outbound_follows_allowed_hosts(client: httpx.Client, upstream: int) -> None:
    r = client.get(f"/t/out/fetch/127.0.0.1:{upstream}/x?y")
    assert r.content == b"status=200\nupstream saw /x?y"
    # a route without allowed_hosts: error-code.HTTP-request-denied (case 15)
    assert client.get(f"/fetch/127.0.0.1:{upstream}/x").content == b"error=15\n"


def test_load_warnings_name_what_does_not_link(server: Server) -> None:
    assert "wasi:foo/bar@0.2.0" in server.output()


def test_volumes_are_granted(client: httpx.Client) -> None:
    listing = client.get("/fs/list").content.split(b"\n")
    assert b"modules.toml" in listing
    assert client.get("/fs/read/modules.toml").content.startswith(b"\n[[module]]")
    # a raw target (httpx would remove the dot segment): not-permitted
    host, port = client.base_url.host, client.base_url.port
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.request("GET", "/fs/read/../modules.toml")
    assert conn.getresponse().read() == b"error=31\n"
    conn.close()


def test_64_concurrent_clients(server: Server) -> None:
    statuses: list[int] = []
    bodies: list[bool] = []

    def hit(i: int) -> None:
        payload = f"client {i}".encode() * 100
        with httpx.Client(base_url=server.base, timeout=60) as c:
            for _ in range(3):
                r = c.post(f"/c/{i}", content=payload)
                statuses.append(r.status_code)
                bodies.append(r.content == payload)

    threads = [threading.Thread(target=hit, args=(i,)) for i in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 192
    assert all(bodies)


def test_serve_one_component_one_liner(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    command = [sys.executable, "-m", "wasmgate", "serve", str(ECHO)]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*command, "--addr", f"127.0.0.1:{port}", "--workers", "1"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                r = httpx.post(f"http://127.0.0.1:{port}/a/b?c", content=b"one-liner", timeout=5)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
        assert r.status_code == 200
        assert r.headers["x-path"] == "/a/b?c"
        assert r.content == b"one-liner"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)


def test_hostile_guests_leave_the_server_bounded(client: httpx.Client, server: Server) -> None:
    # guests that pile up host resources, header fields, files and waits: each request fails
    # alone, the server's memory stays bounded, and the next request is served
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from soak import tree_rss_kib

    for _ in range(3):
        client.get("/hog/handles")
        client.get("/hog/fields")
    before = tree_rss_kib(server.proc.pid)
    for _ in range(20):
        assert client.get("/hog/handles").status_code == 500
        assert client.get("/hog/fields").status_code == 500
        assert client.get("/fs/read/../modules.toml").status_code == 200
    after = tree_rss_kib(server.proc.pid)
    assert after - before < 64 * 1024, f"server RSS grew by {after - before} KiB"
    assert client.get("/hello").content == b"Hello, world!\n"
