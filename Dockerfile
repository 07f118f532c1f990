# syntax=docker/dockerfile:1
#
# wasmgate serving a modules.toml and its modules, compiled at build time (docs/deploying.md).
#
#   docker build -t wasmgate .                          # the example app of examples/wagi
#   docker build -t my-gateway --build-arg APP=context --build-arg APP_DIR=path/to/app .
#   docker run --rm --read-only -p 8080:8080 wasmgate   # then: curl localhost:8080/hello
#
# The app is a folder holding modules.toml, the .wasm files it names and the folders of its
# volumes. It is served from /srv/wasmgate, read-only; mount another modules.toml over
# /srv/wasmgate/modules.toml (or point WASMGATE_MODULES_TOML elsewhere) to change the routes.
# Every `wasmgate serve` flag is a WASMGATE_* variable (docs/deploying.md lists them).

ARG PYTHON_IMAGE=python:3.12-slim-bookworm
# Where the app comes from: "examples" builds examples/wagi from source here; "context" takes
# the folder APP_DIR of the build context as it is (its modules already built).
ARG APP=examples

# --- build: a virtual environment with wasmgate and its dependencies, nothing else -----------------
# A C compiler here builds wasmgate's C host-call crossings (setup.py); the runtime stage gets
# only the virtual environment, not the compiler.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md LICENSE ./
COPY src ./src
RUN python -m venv /opt/wasmgate/venv \
 && /opt/wasmgate/venv/bin/pip install .

# --- app-examples: the example guests, compiled from C (PyPI ziglang) and WAT ----------------------
FROM build AS app-examples
RUN python -m venv /tmp/guestbuild \
 && /tmp/guestbuild/bin/pip install "ziglang==0.17.*" "wasmtime==50.*"
COPY tools/guestbuild.py ./tools/
COPY examples/wagi ./examples/wagi
RUN /tmp/guestbuild/bin/python examples/wagi/build.py \
 && mkdir -p /app \
 && cp examples/wagi/modules.toml examples/wagi/*.wasm /app/ \
 && cp -R examples/wagi/public /app/public

# --- app-context: an app folder from the build context, as it is -----------------------------------
FROM scratch AS app-context
ARG APP_DIR=examples/wagi
COPY ${APP_DIR} /app

FROM app-${APP} AS app

# --- runtime ---------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 wasmgate \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin wasmgate \
 && mkdir -p /var/cache/wasmgate /var/log/wasmgate \
 && chown 10001:10001 /var/cache/wasmgate /var/log/wasmgate
COPY --from=build /opt/wasmgate/venv /opt/wasmgate/venv
COPY --from=app /app /srv/wasmgate
COPY deploy/container/entrypoint.sh deploy/container/warm.py deploy/container/healthcheck.py /opt/wasmgate/bin/
ENV PATH=/opt/wasmgate/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    WARM_CACHE=/opt/wasmgate/cache-seed \
    WASMGATE_MODULES_TOML=/srv/wasmgate/modules.toml \
    WASMGATE_LISTEN=0.0.0.0:8080 \
    WASMGATE_METRICS_LISTEN=0.0.0.0:9090 \
    WASMGATE_CACHE_DIR=/var/cache/wasmgate \
    WASMGATE_LOG_DIR=/var/log/wasmgate
# Compile every module now, through the same start-up a container runs (deploy/container/warm.py).
RUN python /opt/wasmgate/bin/warm.py \
 && chmod 0755 /opt/wasmgate/bin/entrypoint.sh \
 && chmod -R a+rX,go-w /opt/wasmgate /srv/wasmgate
USER 10001:10001
# The only places written at run time; with --read-only (Kubernetes: readOnlyRootFilesystem)
# they must be volumes. /tmp holds each worker's output pipes and the metrics of the workers.
VOLUME ["/var/cache/wasmgate", "/var/log/wasmgate", "/tmp"]
EXPOSE 8080 9090
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/opt/wasmgate/bin/healthcheck.py"]
ENTRYPOINT ["/opt/wasmgate/bin/entrypoint.sh"]
