# syntax=docker/dockerfile:1
# The TradeBot services image: `tradebot service NAME` (the operator's Deployments pass
# `service <id>` as args). Build from the repository root:
#   docker build -f docker/services.Dockerfile -t ghcr.io/tradebot/tradebot:0.1.0 .
# Runs as uid 10001 with a read-only root filesystem: only /tmp (HOME) must be writable.
# Pinned by tag and by digest (the multi-platform index of that tag): rebuilds get the same base.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

# --------------------------------------------------------------------------- build
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY services ./services
COPY operator ./operator
# One virtual environment holding the wheel and its dependencies (all published as wheels:
# no compiler needed); pip and setuptools are removed from it, so the final image has no
# build tools at all.
RUN python -m venv /opt/tradebot \
    && /opt/tradebot/bin/pip install --no-cache-dir ".[providers]" \
    && /opt/tradebot/bin/pip uninstall --yes pip setuptools

# --------------------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="tradebot" \
      org.opencontainers.image.description="TradeBot services: market data, strategy, paper execution, storage, API and dashboard (tradebot service NAME)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/tradebot/tradebot" \
      org.opencontainers.image.vendor="TradeBot"
ENV PATH=/opt/tradebot/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    LOG_FORMAT=json \
    PROBE_PORT=8080 \
    BIND_HOST=0.0.0.0
RUN groupadd --system --gid 10001 tradebot \
    && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home \
       --shell /usr/sbin/nologin tradebot
COPY --from=build /opt/tradebot /opt/tradebot
# A writable scratch space that works with `docker run --read-only` (Kubernetes mounts an emptyDir).
VOLUME ["/tmp"]
USER 10001:10001
WORKDIR /tmp
# api, dashboard, the liveness/readiness endpoints of every other service, and Prometheus /metrics.
EXPOSE 8000 8001 8080 9464
ENTRYPOINT ["tradebot"]
CMD ["--help"]
