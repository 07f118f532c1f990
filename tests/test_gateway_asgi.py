"""The gateway as a plain ASGI app: in-process, mounted inside Starlette, lifespan events."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
from guestbuild import build
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from gateway_support import wat_guest
from wasmgate.config import GatewayConfig
from wasmgate.errors import ConfigError
from wasmgate.gateway import create_app
from wasmgate.gateway.app import Gateway

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "wagi"
pytestmark = pytest.mark.anyio


@pytest.fixture
def toml(tmp_path: Path) -> Path:
    (tmp_path / "hi.wat").write_text(wat_guest(b"Content-Type: text/plain\n\nhi from wasm"))
    shutil.copy(build(EXAMPLES / "env.c"), tmp_path / "dump.wasm")
    path = tmp_path / "modules.toml"
    path.write_text(
        '[[module]]\nroute = "/hi"\nmodule = "hi.wat"\n\n'
        '[[module]]\nroute = "/dump/..."\nmodule = "dump.wasm"\n'
    )
    return path


async def test_app_without_lifespan_loads_lazily(toml: Path) -> None:
    app = create_app(GatewayConfig(modules_toml=toml, threads=2))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        r = await c.get("/hi")
        assert r.status_code == 200
        assert r.text == "hi from wasm"
        assert (await c.get("/healthz")).text == "OK"
        assert (await c.get("/nope")).status_code == 404
    app.close()


async def test_mounted_inside_starlette(toml: Path) -> None:
    gateway = create_app(GatewayConfig(modules_toml=toml, threads=2))

    async def home(request: object) -> PlainTextResponse:
        return PlainTextResponse("python home")

    outer = Starlette(routes=[Route("/", home), Mount("/wasm", app=gateway)])
    transport = httpx.ASGITransport(app=outer)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        assert (await c.get("/")).text == "python home"
        r = await c.get("/wasm/hi")
        assert r.status_code == 200
        assert r.text == "hi from wasm"
        dumped = (await c.get("/wasm/dump/a/b?q=1")).text
        assert "/dump/a/b" in dumped
        assert "PATH_INFO=/a/b" in dumped
        # Issue 12, item 13: the mount point is part of the guest's view of its own URL.
        assert "SCRIPT_NAME=/wasm/dump\n" in dumped
        assert "X_FULL_URL=http://t:80/wasm/dump/a/b?q=1\n" in dumped
    gateway.close()


async def test_create_app_validates_the_configuration_at_once(tmp_path: Path) -> None:
    """Issue 12, item 13: a broken modules.toml used to pass create_app() and fail later, with a
    traceback at the first request."""
    bad = tmp_path / "modules.toml"
    bad.write_text('[[module]]\nroute = "/x"\nmodule = "missing.wasm"\n')
    with pytest.raises(ConfigError, match=r"missing\.wasm"):
        create_app(GatewayConfig(modules_toml=bad))


async def test_lifespan_startup_reports_config_errors(tmp_path: Path) -> None:
    bad = tmp_path / "modules.toml"
    bad.write_text('[[module]]\nroute = "/x"\nmodule = "missing.wasm"\n')
    app = Gateway(GatewayConfig(modules_toml=bad))
    sent: list[dict[str, object]] = []
    messages = iter([{"type": "lifespan.startup"}])

    async def receive() -> dict[str, object]:
        return next(messages)

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    await app({"type": "lifespan"}, receive, send)
    assert sent[0]["type"] == "lifespan.startup.failed"
    assert "missing.wasm" in str(sent[0]["message"])
    with pytest.raises(ConfigError):
        app.load()
    app.close()
