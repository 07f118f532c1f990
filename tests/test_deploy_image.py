"""The container image, without a container daemon (there is none on the development and CI
machines): the Dockerfile's rules, read from the file itself, and the image's own commands run on
this machine the way the image runs them.

- Rules: several stages, the runtime one on a slim Python; a numeric non-root USER; a HEALTHCHECK
  running the shipped healthcheck; volumes for every place written at run time; nothing copied
  from the build context that ``.dockerignore`` leaves out or that looks like a secret; the
  ``WASMGATE_*`` variables set are serve flags; the guest toolchain pins match pyproject.toml.
- The image's commands: the Dockerfile's own ``RUN`` lines that build the example app and warm
  the cache, and its ``ENTRYPOINT`` and ``HEALTHCHECK``, executed with the image's ``ENV``, each
  image path mapped to a temporary directory. The entry point runs in a private mount namespace
  whose root filesystem is read-only (as with ``docker run --read-only``), only the cache, log and
  /tmp volumes writable: it must start warm (no module compiled: the cache entries the build
  wrote are the ones it uses), serve the app, answer the HEALTHCHECK, and drain on SIGTERM.
  (The user creation and the pip install of the build are not run: the test uses this
  checkout's virtual environment, as root.)
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gateway_support import free_port
from wasmgate.cli.serve import ENV_PREFIX, serve
from wasmgate.config import GatewayConfig
from wasmgate.wagi.manifest import load_manifest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
SERVE_VARIABLES = {f"{ENV_PREFIX}_{p.name.upper()}" for p in serve.params if p.name != "help"}


# --- reading the Dockerfile --------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    args: str


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [i.args for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for args in self.all("ENV"):
            for token in shlex.split(args):
                key, _, value = token.partition("=")
                out[key] = value
        return out


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARGs (before the first FROM) and the stages, instructions joined across ``\\``."""
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        args = " ".join(args.split())
        if keyword == "FROM":
            parts = args.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(parts[0], name))
        elif not stages:
            assert keyword == "ARG", line
            key, _, value = args.partition("=")
            global_args[key] = value
        else:
            stages[-1].instructions.append(Instruction(keyword, args))
    return global_args, stages


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    return parse_dockerfile(DOCKERFILE.read_text())


def _stage(stages: list[Stage], name: str) -> Stage:
    (stage,) = [s for s in stages if s.name == name]
    return stage


def _dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [x.strip() for x in lines if x.strip() and not x.startswith("#")]


def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore leaves ``path`` (relative to the context) out (no ``!`` rules)."""
    parts = path.split("/")
    for pattern in patterns:
        assert not pattern.startswith("!"), "the check below does not handle exceptions"
        for i in range(1, len(parts) + 1):
            prefix = "/".join(parts[:i])
            if fnmatch.fnmatch(prefix, pattern) or (
                pattern.startswith("**/") and fnmatch.fnmatch(parts[i - 1], pattern[3:])
            ):
                return True
    return False


# --- the rules ---------------------------------------------------------------------------------


def test_multi_stage_with_a_slim_runtime(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    global_args, stages = dockerfile
    assert len(stages) >= 3
    runtime = stages[-1]
    assert runtime.name == "runtime"
    assert runtime.base == "${PYTHON_IMAGE}"
    image = global_args["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.1[1-9]-slim(-\w+)?", image), image
    # Only the virtual environment and the app come from the build stages: no compiler, no pip
    # cache, no sources.
    copied = [c for c in runtime.all("COPY") if c.startswith("--from=")]
    assert sorted(c.split()[0] for c in copied) == ["--from=app", "--from=build"]


def test_runs_as_a_numeric_non_root_user(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    runtime = dockerfile[1][-1]
    users = runtime.all("USER")
    assert users, "the runtime stage sets no USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit(), "numeric, so that Kubernetes' runAsNonRoot can check it"
    assert int(uid) != 0
    assert gid.isdigit()
    assert int(gid) != 0
    keywords = [i.keyword for i in runtime.instructions]
    last_user = len(keywords) - 1 - keywords[::-1].index("USER")
    assert "RUN" not in keywords[last_user:], "nothing runs as root after USER"


def test_healthcheck_runs_the_shipped_check(
    dockerfile: tuple[dict[str, str], list[Stage]],
) -> None:
    runtime = dockerfile[1][-1]
    (check,) = runtime.all("HEALTHCHECK")
    options, _, command = check.partition(" CMD ")
    assert "--timeout=" in options
    assert "--interval=" in options
    argv = json.loads(command)
    assert argv[-1] == "/opt/wasmgate/bin/healthcheck.py"
    assert any("deploy/container/healthcheck.py" in c for c in runtime.all("COPY"))


def test_volumes_cover_every_place_written(
    dockerfile: tuple[dict[str, str], list[Stage]],
) -> None:
    runtime = dockerfile[1][-1]
    env = runtime.env()
    (volumes,) = runtime.all("VOLUME")
    declared = set(json.loads(volumes))
    assert {env["WASMGATE_CACHE_DIR"], env["WASMGATE_LOG_DIR"], "/tmp"} == declared


def test_copies_nothing_ignored_or_secret(
    dockerfile: tuple[dict[str, str], list[Stage]],
) -> None:
    _, stages = dockerfile
    patterns = _dockerignore()
    for secret in ("**/.env", "**/*.pem", "**/*.key", "**/id_rsa*", ".git"):
        assert secret in patterns, f".dockerignore should leave out {secret}"
    for stage in stages:
        assert not stage.all("ADD"), "COPY only: ADD fetches URLs and unpacks archives"
        for copy in stage.all("COPY"):
            words = [w for w in copy.split() if not w.startswith("--")]
            if copy.startswith("--from="):
                continue
            *sources, _dest = words
            for source in sources:
                if source.startswith("${"):
                    continue  # APP_DIR: the builder's own folder, checked below with its default
                assert source not in (".", "./", "*"), "never the whole build context"
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
                assert not _ignored(source, patterns), f"COPY {source}: left out by .dockerignore"
        for env_or_arg in stage.all("ENV") + stage.all("ARG"):
            assert not re.search(r"(PASSWORD|SECRET|TOKEN|API_KEY|PRIVATE)", env_or_arg, re.I)
    app_dir = [a for a in _stage(stages, "app-context").all("ARG") if a.startswith("APP_DIR=")]
    assert app_dir == ["APP_DIR=examples/wagi"]
    assert (ROOT / "examples/wagi/modules.toml").is_file()


def test_variables_are_serve_flags(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    env = dockerfile[1][-1].env()
    ours = {k for k in env if k.startswith(f"{ENV_PREFIX}_")}
    assert ours
    assert ours <= SERVE_VARIABLES, ours - SERVE_VARIABLES
    assert env["WASMGATE_LISTEN"].endswith(":8080")
    assert env["WASMGATE_METRICS_LISTEN"].endswith(":9090")
    exposed = {int(p) for e in dockerfile[1][-1].all("EXPOSE") for p in e.split()}
    assert exposed == {8080, 9090}


def test_guest_toolchain_matches_pyproject(
    dockerfile: tuple[dict[str, str], list[Stage]],
) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {*project["dependencies"], *project["optional-dependencies"]["dev"]}
    run = " ".join(_stage(dockerfile[1], "app-examples").all("RUN"))
    for package in ("ziglang", "wasmtime"):
        (pin,) = [p for p in pins if re.match(rf"{package}(?![\w-])", p)]
        assert f'"{pin}"' in run, f"the Dockerfile's {package} is not pyproject's {pin}"


# --- the image's commands, run here ------------------------------------------------------------

IMAGE_PATHS = ("/opt/wasmgate", "/opt/wasmgate/cache-seed", "/opt/wasmgate/bin",
               "/opt/wasmgate/venv", "/tmp/guestbuild", "/srv/wasmgate", "/var/cache/wasmgate",
               "/var/log/wasmgate", "/app")  # fmt: skip


@dataclass
class ImageRoot:
    """Each image path mapped to a place on this machine."""

    paths: dict[str, Path]

    def map(self, text: str) -> str:
        for image_path in sorted(self.paths, key=len, reverse=True):
            text = re.sub(
                rf"(?<![\w./-]){re.escape(image_path)}(?![\w-])", str(self.paths[image_path]), text
            )
        return text

    def env(self, stage: Stage) -> dict[str, str]:
        env = {k: self.map(v) for k, v in stage.env().items()}
        env["PATH"] = env["PATH"].replace("$PATH", os.environ.get("PATH", "/usr/bin:/bin"))
        return env


@pytest.fixture(scope="module")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> ImageRoot:
    tmp = tmp_path_factory.mktemp("image")
    venv = Path(sys.prefix)
    paths = {
        "/opt/wasmgate": tmp / "opt",
        "/opt/wasmgate/venv": venv,
        "/tmp/guestbuild": venv,  # this checkout's venv has ziglang and wasmtime too
        "/opt/wasmgate/bin": ROOT / "deploy" / "container",
        "/opt/wasmgate/cache-seed": tmp / "cache-seed",
        "/srv/wasmgate": tmp / "srv",
        "/var/cache/wasmgate": tmp / "cache",
        "/var/log/wasmgate": tmp / "log",
        "/app": tmp / "app",
    }
    assert set(paths) == set(IMAGE_PATHS)
    paths["/opt/wasmgate"].mkdir()
    return ImageRoot(paths)


def _run_step(root: ImageRoot, command: str, env: dict[str, str], cwd: Path) -> None:
    proc = subprocess.run(
        ["sh", "-ec", root.map(command)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"{command}\n{proc.stdout}\n{proc.stderr}"


@pytest.fixture(scope="module")
def built(
    dockerfile: tuple[dict[str, str], list[Stage]], image_root: ImageRoot
) -> dict[str, float]:
    """The build's steps that make the app and warm the cache, from the Dockerfile, run here.
    Returns each seeded artifact's name and modification time."""
    _, stages = dockerfile
    examples = _stage(stages, "app-examples")
    (build_app,) = [r for r in examples.all("RUN") if "build.py" in r]
    base_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(Path.home())}
    _run_step(image_root, build_app, base_env, ROOT)  # WORKDIR /src: the repository
    # COPY --from=app /app /srv/wasmgate
    shutil.copytree(image_root.paths["/app"], image_root.paths["/srv/wasmgate"])
    runtime = stages[-1]
    (warm,) = [r for r in runtime.all("RUN") if "warm.py" in r]
    _run_step(image_root, warm, {**base_env, **image_root.env(runtime)}, ROOT)
    seed = image_root.paths["/opt/wasmgate/cache-seed"]
    return {p.name: p.stat().st_mtime for p in seed.glob("*.cwasm")}


def test_build_compiles_every_module_into_the_seed(
    built: dict[str, float], image_root: ImageRoot
) -> None:
    srv = image_root.paths["/srv/wasmgate"]
    modules = sorted(p.name for p in srv.glob("*.wasm"))
    assert {"hello.wasm", "api.wasm", "static.wasm"} <= set(modules)
    assert (srv / "modules.toml").is_file()
    assert (srv / "public" / "index.html").is_file()
    # One artifact per module and engine (with fuel metering or without) the routes need.
    manifest = load_manifest(srv / "modules.toml")
    defaults = GatewayConfig(modules_toml=srv / "modules.toml").defaults
    needed = {
        (spec.module_path, defaults.merged(spec.limits).fuel is not None)
        for spec in manifest.modules
    }
    assert len(needed) == len(built), (sorted(needed), sorted(built))
    assert len({path for path, _ in needed}) == len(modules)


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=5) as r:
        return int(r.status), bytes(r.read())


def _can_make_read_only_root() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "true"], capture_output=True
    )
    return probe.returncode == 0


@dataclass
class Container:
    proc: subprocess.Popen[bytes]
    env: dict[str, str]
    log: Path
    base: str
    metrics: str


@pytest.fixture(scope="module")
def container(
    dockerfile: tuple[dict[str, str], list[Stage]],
    image_root: ImageRoot,
    built: dict[str, float],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Container]:
    if not _can_make_read_only_root():
        pytest.skip("needs root and unshare(1) for a read-only root filesystem")
    runtime = dockerfile[1][-1]
    env = image_root.env(runtime)
    port, metrics_port = free_port(), free_port()
    env["WASMGATE_LISTEN"] = f"127.0.0.1:{port}"  # loopback here, all interfaces in the image
    env["WASMGATE_METRICS_LISTEN"] = f"127.0.0.1:{metrics_port}"
    env["WASMGATE_WORKERS"] = "2"  # as Kubernetes sets it from the CPU limit
    scratch = tmp_path_factory.mktemp("container-tmp")
    env["TMPDIR"] = str(scratch)  # the /tmp volume
    writable = [env["WASMGATE_CACHE_DIR"], env["WASMGATE_LOG_DIR"], str(scratch)]
    for d in writable:
        Path(d).mkdir(parents=True, exist_ok=True)
    (entry,) = runtime.all("ENTRYPOINT")
    argv = [image_root.map(a) for a in json.loads(entry)]
    # A private mount namespace: the volumes stay writable, then the root goes read-only.
    script = (
        "".join(f"mount --bind {shlex.quote(d)} {shlex.quote(d)} && " for d in writable)
        + 'mount -o remount,bind,ro / && exec "$@"'
    )
    log = scratch.parent / "container.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *argv],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    c = Container(proc, env, log, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}")
    try:
        deadline = time.monotonic() + 60
        while _healthcheck(dockerfile, image_root, env) != 0:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield c
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _healthcheck(
    dockerfile: tuple[dict[str, str], list[Stage]], image_root: ImageRoot, env: dict[str, str]
) -> int:
    (check,) = dockerfile[1][-1].all("HEALTHCHECK")
    argv = [image_root.map(a) for a in json.loads(check.partition(" CMD ")[2])]
    return subprocess.run(argv, env=env, capture_output=True, timeout=30).returncode


def test_container_starts_warm_on_a_read_only_root(
    container: Container, built: dict[str, float]
) -> None:
    status, body = _get(container.base + "/hello")
    assert (status, body) == (200, b"Hello from WebAssembly!\n")
    assert _get(container.base + "/api/")[0] == 200  # the fuel route
    assert _get(container.base + "/hello.txt")[0] == 200  # the static volume, read-only
    cache = Path(container.env["WASMGATE_CACHE_DIR"])
    entries = {p.name for p in cache.glob("*.cwasm")}
    # The cache holds exactly what the build compiled: nothing was compiled at start-up (a
    # compile would have added an entry under a new name).
    assert entries == set(built)
    # A worker's requests reach the scrape within the metrics' flush period (0.25 s).
    deadline = time.monotonic() + 5
    while b"wasmgate_requests_total" not in _get(container.metrics + "/metrics")[1]:
        assert time.monotonic() < deadline, "no request counted in the metrics"
        time.sleep(0.05)
    # The root is read-only for the container: nothing else could have been written.
    probe = subprocess.run(
        ["nsenter", f"--mount=/proc/{container.proc.pid}/ns/mnt", "touch", "/probe-ro"],
        capture_output=True,
    )
    assert probe.returncode != 0
    assert b"Read-only file system" in probe.stderr


def test_container_drains_on_sigterm_and_the_healthcheck_sees_it(
    container: Container,
    dockerfile: tuple[dict[str, str], list[Stage]],
    image_root: ImageRoot,
) -> None:
    assert _healthcheck(dockerfile, image_root, container.env) == 0
    container.proc.send_signal(signal.SIGTERM)
    assert container.proc.wait(30) == 0, container.log.read_text()
    assert _healthcheck(dockerfile, image_root, container.env) == 1
    log = container.log.read_text()
    assert "cannot" not in log, log  # the seed copy worked
