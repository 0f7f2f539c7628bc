# syntax=docker/dockerfile:1
# aigateway-operator image: `aigateway-operator run`, as the Helm chart in
# deploy/helm/aigateway-operator runs it (non-root, read-only root filesystem).
#
# The base is pinned to the exact Python the dependency lock was resolved and tested with;
# bump both stages and the lock together (deploy/lock_requirements.py rewrites the lock from
# the project venv). No registry was reachable to record a digest; add @sha256:... when
# publishing.
#
# BASE is a build argument so that a machine without a registry can pass a locally made
# Python 3.11 base (the local environment passes one made from Debian's packages:
# tools/devenv/images.py); `docker build .` uses the default.
ARG BASE=python:3.11.7-slim-bookworm

FROM ${BASE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
# Dependencies first (a layer that only changes with the lock), exactly as pinned, no resolver.
COPY deploy/requirements.lock /tmp/requirements.lock
RUN /opt/venv/bin/pip install --no-deps --require-virtualenv -r /tmp/requirements.lock \
    && /opt/venv/bin/pip check
# The operator itself is pure Python: copied into the venv, no build backend to fetch. Only
# the package: tools/ (the local environment, a development tool) is not in the image.
COPY src/aigateway_operator /opt/venv/lib/python3.11/site-packages/aigateway_operator
RUN /opt/venv/bin/python -m compileall -q /opt/venv/lib/python3.11/site-packages/aigateway_operator \
    && /opt/venv/bin/python -c "import aigateway_operator.operator, aigateway_operator.cli" \
    && /opt/venv/bin/python -m aigateway_operator.cli --version

FROM ${BASE}
LABEL org.opencontainers.image.title="aigateway-operator" \
      org.opencontainers.image.description="Manages Coder AI Gateway providers and gateway keys" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /opt/venv /opt/venv
# A numeric, unprivileged user (the chart's runAsUser): runAsNonRoot can verify it.
USER 65532:65532
WORKDIR /tmp
EXPOSE 8080 9090
ENTRYPOINT ["python", "-m", "aigateway_operator.cli"]
CMD ["run"]
