"""The language gallery (examples/languages/): every handler built from source through the cache,
served by the real ``wasmgate serve`` on a loopback port and called over HTTP; every plugin called
through the embedding API.

A language whose toolchain is not installed is skipped here, and fails the suite under ``CI=true``
(``.ci/run`` installs them all with ``tools/install-toolchains.sh``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from guestbuild import build as build_guest

from conftest import ROOT
from gateway_support import free_port

sys.path.insert(0, str(ROOT / "examples" / "languages"))

import gallery  # examples/languages/gallery.py
import plugins  # examples/languages/plugins.py

# A cold machine builds zig's wasi-libc and libc++ once (a minute or two) before the first test.
pytestmark = pytest.mark.timeout(900)

LANGUAGES = list(gallery.LANGUAGES)
PLUGINS = list(plugins.PLUGINS)
IN_CI = gallery.strict_default()


@dataclass
class Gallery:
    built: dict[str, gallery.Built]
    missing: dict[str, str]
    base: str = ""

    def require(self, key: str) -> None:
        """Skip a language whose toolchain is missing, or fail if running in CI."""
        if key in self.missing:
            message = f"{key}: toolchain missing: {self.missing[key]}"
            if IN_CI:
                pytest.fail(f"{message} (CI=true: tools/install-toolchains.sh must install it)")
            pytest.skip(message)


@pytest.fixture(scope="module")
def built() -> Gallery:
    result, missing, failed = gallery.build_all()
    if failed:
        pytest.fail("\n".join(f"{k}: {reason}" for k, reason in failed.items()))
    return Gallery(result, missing)


@pytest.fixture(scope="module")
def served(
    built: Gallery, tmp_path_factory: pytest.TempPathFactory, cache_dir: Path
) -> Iterator[Gallery]:
    """``wasmgate serve`` on a loopback port: examples/languages/modules.toml itself when every
    language was built, else a manifest with the ones that were."""
    tmp = tmp_path_factory.mktemp("languages")
    build_guest(ROOT / "examples" / "wagi" / "static.c", out=ROOT / "examples" / "wagi")
    if built.missing:
        toml = gallery.write_manifest(tmp / "modules.toml", built.built, built.missing)
    else:
        toml = ROOT / "examples" / "languages" / "modules.toml"
    port = free_port()
    log = tmp / "server.log"
    env = {**os.environ, "WASMGATE_CACHE_DIR": str(cache_dir)}
    cmd = [sys.executable, "-m", "wasmgate", "serve", "-c", str(toml)]
    cmd += ["-l", f"127.0.0.1:{port}", "--workers", "1"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120  # compiles every module (Go's is 2.7 MB) at start-up
        while True:
            if proc.poll() is not None:
                pytest.fail(f"wasmgate serve exited with {proc.returncode}:\n{log.read_text()}")
            try:
                httpx.get(base + "/healthz", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    pytest.fail("wasmgate serve did not start:\n" + log.read_text())
                time.sleep(0.1)
        yield Gallery(built.built, built.missing, base)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def expected(key: str, method: str, query: str, greeting: str, body: str) -> dict[str, object]:
    return {
        "language": gallery.LANGUAGES[key].title,
        "method": method,
        "query": query,
        "greeting": greeting,
        "length": len(body.encode()),
        "body": body,
    }


def call(g: Gallery, key: str, method: str, query: str, **kwargs: object) -> dict[str, object]:
    url = f"{g.base}/lang/{key}" + (f"?{query}" if query else "")
    response = httpx.request(method, url, timeout=30, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    reply = json.loads(response.content)
    assert isinstance(reply, dict)
    return reply


@pytest.mark.parametrize("key", LANGUAGES)
def test_handler_reads_query_header_and_body(served: Gallery, key: str) -> None:
    served.require(key)
    body = 'line one\n\t"quoted" back\\slash \x01 żółw 🐢 </script>'
    greeting = 'hi "there" \\ friend'
    query = "name=Ada&n=42&odd=%20%26%22"
    reply = call(
        served,
        key,
        "POST",
        query,
        content=body.encode(),
        headers={"X-Greeting": greeting, "Content-Type": "text/plain"},
    )
    assert reply == expected(key, "POST", query, greeting, body)


@pytest.mark.parametrize("key", LANGUAGES)
def test_handler_get_without_anything(served: Gallery, key: str) -> None:
    served.require(key)
    assert call(served, key, "GET", "") == expected(key, "GET", "", "", "")


@pytest.mark.parametrize("key", LANGUAGES)
def test_handler_large_body(served: Gallery, key: str) -> None:
    """300 KB in and about as much out: every guest loops on reads and writes."""
    served.require(key)
    body = "".join(f'{i:06d} "x"\n' for i in range(30_000))
    reply = call(served, key, "PUT", "big=1", content=body.encode())
    assert reply == expected(key, "PUT", "big=1", "", body)


@pytest.mark.parametrize("key", [k for k in LANGUAGES if gallery.LANGUAGES[k].kind != "wagi"])
def test_http_handlers_are_components(built: Gallery, key: str) -> None:
    """The http-* folders build wasi:http components (so the server routes them as such), and the
    WAGI folders core modules; the layer field of the header tells them apart."""
    built.require(key)
    header = built.built[key].paths["handler"].read_bytes()[:8]
    assert header == b"\0asm\x0d\x00\x01\x00", f"{key}: not a component"
    for other, result in built.built.items():
        if gallery.LANGUAGES[other].kind == "wagi":
            assert result.paths["handler"].read_bytes()[:8] == b"\0asm\x01\x00\x00\x00"


def test_index_page_links_every_language(served: Gallery) -> None:
    page = httpx.get(served.base + "/lang/", timeout=30)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    for key in served.built:
        assert f'href="{key}?' in page.text


def test_manifest_serves_every_language() -> None:
    """The committed modules.toml and index page name every language in the gallery, once."""
    routes = [m["route"] for m in gallery.language_entries(LANGUAGES)]
    assert routes == [f"/lang/{k}" for k in LANGUAGES]
    for key in LANGUAGES:
        assert (gallery.HERE / key).is_dir()
    page = (gallery.HERE / "public" / "index.html").read_text()
    assert page == gallery.index_page(LANGUAGES, {}), "regenerate public/index.html (README)"


@pytest.mark.parametrize("key", PLUGINS)
def test_plugin_strings_and_host_function(built: Gallery, key: str) -> None:
    built.require(key)
    seen: Counter[str] = Counter()
    plugin = plugins.load(key, seen)
    title = gallery.LANGUAGES[key].title
    assert plugin.call_str("greet", "Ada") == f"Hello, Ada! ({title}, visit 1)"
    assert plugin.call_str("greet", "żółw 🐢") == f"Hello, żółw 🐢! ({title}, visit 1)"
    assert plugin.call_str("greet", "Ada") == f"Hello, Ada! ({title}, visit 2)"
    assert plugin.call_str("greet", "") == f"Hello, ! ({title}, visit 1)"
    assert seen == Counter({"Ada": 2, "żółw 🐢": 1, "": 1})


@pytest.mark.parametrize("key", PLUGINS)
def test_plugin_frees_arguments_and_results(built: Gallery, key: str) -> None:
    """10 KB in and out per call: memory stops growing once the allocator has warmed up."""
    built.require(key)
    plugin = plugins.load(key, Counter())
    name = "n" * 10_000
    for _ in range(50):
        plugin.call_str("greet", name)
    warm = plugin.memory.size
    for _ in range(1000):  # 20 MB through the plugin: a leak would grow memory by that much
        assert plugin.call_str("greet", name).startswith("Hello, nnn")
    assert plugin.memory.size <= warm + 2**20


def test_plugins_script(built: Gallery, capsys: pytest.CaptureFixture[str]) -> None:
    for key in PLUGINS:
        built.require(key)
    assert plugins.main(["Grace", "Grace"]) == 0
    lines = capsys.readouterr().out.splitlines()
    greetings = [f"Hello, Grace! ({gallery.LANGUAGES[k].title}, visit " for k in PLUGINS]
    assert [line.split(" -> ")[1][1:] for line in lines] == [
        f"{g}{n})'" for n, g in enumerate([x for g in greetings for x in (g, g)], start=1)
    ]


def test_second_build_comes_from_the_cache(built: Gallery) -> None:
    for key in built.built:
        again = gallery.build(key)
        assert again.cached
        assert all(p.read_bytes() for p in again.paths.values())


def test_cache_key_covers_sources_and_toolchain(tmp_path: Path) -> None:
    lang = gallery.LANGUAGES["wat"]
    copy = tmp_path / "wat"
    shutil.copytree(lang.folder, copy)
    key = gallery.cache_key(lang, "wasmtime-50.0.0", copy)
    assert key == gallery.cache_key(lang, "wasmtime-50.0.0", lang.folder)
    assert key != gallery.cache_key(lang, "wasmtime-50.0.1", copy)
    with (copy / "handler.wat").open("a") as f:
        f.write(";; an edit\n")
    assert key != gallery.cache_key(lang, "wasmtime-50.0.0", copy)


def test_missing_toolchain_is_skipped_or_fatal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(gallery, "GO_CANDIDATES", ("/nonexistent/go",))
    monkeypatch.delenv("CI", raising=False)
    assert gallery.main(["go"]) == 0
    assert "Go: skipped, toolchain missing: no Go 1.21 or later" in capsys.readouterr().err
    assert gallery.main(["--strict", "go"]) == 1
    monkeypatch.setenv("CI", "true")
    assert gallery.main(["go"]) == 1


def test_component_without_node_is_skipped_or_fatal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The components' tools come from npm (jco's wasm-tools and WIT, componentize-js): without
    node, every component language is skipped with the reason, and fails the build when strict."""
    real_which = shutil.which
    monkeypatch.setattr(
        gallery.shutil, "which", lambda name: None if name == "node" else real_which(name)
    )
    monkeypatch.delenv("CI", raising=False)
    components = [k for k in LANGUAGES if gallery.LANGUAGES[k].kind == "wasi:http"]
    assert gallery.main(components) == 0
    err = capsys.readouterr().err
    for key in components:  # (Rust's may be missing first, on a machine without it)
        assert f"{gallery.LANGUAGES[key].title}: skipped, toolchain missing: " in err
    assert "JavaScript: skipped, toolchain missing: node is not installed" in err
    assert "Python: skipped, toolchain missing: node is not installed" in err
    assert gallery.main(["--strict", "http-js"]) == 1


def test_demo_manifest_names_what_was_skipped(tmp_path: Path) -> None:
    toml = gallery.write_demo(tmp_path, ["c", "wat"], {"go": "no Go 1.21 or later"})
    text = toml.read_text()
    assert '"/lang/c"' in text
    assert '"/lang/wat"' in text
    assert '"/lang/go"' not in text
    assert text.index('"/lang/..."') < text.index('route = "/..."')  # before the catch-all
    page = (tmp_path / "lang-index" / "index.html").read_text()
    assert "Not built on this machine" in page
    assert "no Go 1.21 or later" in page
    # The demo's index page (a copy of examples/wagi/public) links to the gallery.
    assert 'href="lang/"' in (tmp_path / "public" / "index.html").read_text()
    assert 'href="lang/"' not in (ROOT / "examples" / "wagi" / "public" / "index.html").read_text()
    manifest = tomllib.loads(text)
    catch_all = [m for m in manifest["module"] if m["route"] == "/..."]
    assert catch_all[0]["volumes"] == {"/static": str(tmp_path / "public")}


def test_subset_manifest_is_valid(tmp_path: Path) -> None:
    """What the tests and the benchmark serve when some languages are not built."""
    from wasmgate.wagi.manifest import load_manifest

    build_guest(ROOT / "examples" / "wagi" / "static.c", out=ROOT / "examples" / "wagi")
    gallery.build("wat")
    toml = gallery.write_manifest(tmp_path / "modules.toml", ["wat"], {"go": "no Go here"})
    manifest = load_manifest(toml)
    assert [m.route.text for m in manifest.modules] == ["/lang/wat", "/lang/..."]
    assert "no Go here" in (tmp_path / "lang-index" / "index.html").read_text()
