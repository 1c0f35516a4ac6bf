# The stackstate-key-rotator daemon (`rotator run`) as a small, non-root image that runs with a
# read-only root filesystem. Kubernetes manifests and systemd units are under deploy/.
#
#   docker build -t stackstate-key-rotator \
#     --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:<digest> \
#     --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" \
#     --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" --build-arg SOURCE_URL=https://… .
#
# Reproducible inputs: the runtime dependencies are pinned with their hashes in requirements.lock
# (`make lock` regenerates it from pyproject.toml) and installed with --require-hashes; the base
# image is pinned by digest through PYTHON_IMAGE. Its default below is the tag, because a digest
# cannot be looked up offline: release builds pass the digest that
#   docker buildx imagetools inspect python:3.11-slim-bookworm --format '{{.Manifest.Digest}}'
# prints (README, "Container image"). Both stages use the same base so the wheel is built by the
# interpreter that runs it.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: turn the source tree into one wheel (no dependencies, no tests) -------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
# .dockerignore admits only what the wheel is built from: pyproject.toml, README.md, rotator/.
# The emulators (sandbox/, a distribution of their own for tests and demos) never get in.
COPY pyproject.toml README.md ./
COPY rotator ./rotator
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# --- runtime: the wheel and its runtime dependencies, nothing else ------------------------------
FROM ${PYTHON_IMAGE}

ARG PYTHON_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE_URL=https://example.invalid/stackstate-key-rotator

# OCI annotations (SBOM and scanner friendly): what, which version and commit, from where, on
# which base, when.
LABEL org.opencontainers.image.title="stackstate-key-rotator" \
      org.opencontainers.image.description="Rotates StackState / SUSE Observability API keys and service tokens before they expire, without an ingestion outage." \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.url="${SOURCE_URL}" \
      org.opencontainers.image.documentation="${SOURCE_URL}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

# Nothing may be written outside /tmp at run time: the manifests mount an emptyDir there and make
# the root filesystem read-only. pip compiles the bytecode at install time, so Python never needs
# to write any; HOME and TMPDIR (the Kubernetes client's temporary CA files, the cron lock) point
# at the writable volume.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    ROTATOR_CONFIG=/etc/rotator/rotator.yaml

# A fixed UID/GID so Kubernetes' runAsUser/fsGroup and file ownership on VMs can name it.
RUN groupadd --system --gid 10001 rotator \
    && useradd --system --no-log-init --uid 10001 --gid 10001 \
        --home-dir /tmp --no-create-home --shell /usr/sbin/nologin rotator

COPY --from=builder /wheels /wheels
COPY requirements.lock /wheels/requirements.lock
# The runtime dependencies exactly as locked (every file checked against its hash; never the test
# extra), then the built wheel alone; `pip check` fails the build when the lock misses a
# dependency. The wheel files are removed in the same layer.
RUN pip install --no-cache-dir --require-hashes --no-deps -r /wheels/requirements.lock \
    && pip install --no-deps --no-cache-dir /wheels/*.whl \
    && pip check \
    && rm -rf /wheels

USER 10001:10001

# /metrics, /healthz and /readyz (server.listen in the configuration).
EXPOSE 9108

# Kubernetes uses the liveness and readiness probes on /healthz and /readyz instead.
HEALTHCHECK NONE

ENTRYPOINT ["rotator"]
CMD ["run"]
