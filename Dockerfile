# syntax=docker/dockerfile:1
# aigateway-operator image: `aigateway-operator run`, as the Helm chart in
# deploy/helm/aigateway-operator runs it: uid 65532, a read-only root filesystem (only /tmp is
# written; Python writes no bytecode), nothing but the operator and its locked dependencies.
#
# BASE is pinned by digest. The digest below is the newest python:3.11 bookworm-slim one found
# pinned in public Dockerfiles (3.11.17, a multi-arch index); it could not be checked against
# the registry from this repository's build machine. Before a release, verify it with
# `docker buildx imagetools inspect python:3.11-slim-bookworm` and bump tag and digest together.
# The lock holds cp311 wheels only, so any 3.11 patch release runs it.
#
# BASE is a build argument so that a machine without a registry can pass a locally made
# Python 3.11 base (the local environment passes one made from Debian's packages:
# tools/devenv/images.py); `docker build .` uses the default.
ARG BASE=python:3.11.17-slim-bookworm@sha256:0a310eeecf4e1f5a0743f9a6520c90c88d089c903ca5fd283f501e3a805f5f89

FROM ${BASE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
# Dependencies first (a layer that only changes with the lock): exactly the pinned versions,
# wheels only, every file checked against the lock's hashes, no resolver.
COPY deploy/requirements.lock /tmp/requirements.lock
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-deps --require-hashes --only-binary=:all: \
       -r /tmp/requirements.lock
# The operator's own wheel, built with the hashed build backend (deploy/build-requirements.lock)
# in a throwaway venv, then installed without dependencies (they are all above).
COPY deploy/build-requirements.lock /tmp/build-requirements.lock
RUN python -m venv /opt/build \
    && /opt/build/bin/pip install --no-deps --require-hashes --only-binary=:all: \
       -r /tmp/build-requirements.lock
# The wheel's metadata names a README (pyproject.toml's `readme`): a one-line stand-in, not the
# repository's README.md, so that editing the documentation neither changes the image nor
# (tools/devenv/images.py keys its cache by what the build reads) rebuilds it.
COPY pyproject.toml LICENSE /src/
COPY src/aigateway_operator /src/src/aigateway_operator
RUN printf "aigateway-operator: see the project's README.md.\n" > /src/README.md \
    && /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /tmp/wheels /src \
    && /opt/venv/bin/pip install --no-deps /tmp/wheels/aigateway_operator-*.whl \
    && /opt/venv/bin/pip check \
    && /opt/venv/bin/python -c "import aigateway_operator.cli, aigateway_operator.operator" \
    && /opt/venv/bin/python -m aigateway_operator.cli --version

FROM ${BASE}
ARG VERSION=dev
LABEL org.opencontainers.image.title="aigateway-operator" \
      org.opencontainers.image.description="Manages Coder AI Gateway providers and gateway keys" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
# A named user for the numeric uid the chart runs as (runAsUser 65532): getpass.getuser(),
# which kopf calls, needs a passwd entry. No home directory: HOME is the writable /tmp.
RUN groupadd --gid 65532 aigw \
    && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /tmp --no-log-init \
       --shell /usr/sbin/nologin aigw
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /opt/venv /opt/venv
# Numeric, so the kubelet can verify runAsNonRoot.
USER 65532:65532
WORKDIR /tmp
EXPOSE 8080 9090
ENTRYPOINT ["python", "-m", "aigateway_operator.cli"]
CMD ["run"]
