# syntax=docker/dockerfile:1
# The TradingStack operator image: `python -m tradebot_operator` (kopf), deployed by the
# chart (charts/tradebot). Build from the repository root:
#   docker build -f docker/operator.Dockerfile -t ghcr.io/tradebot/tradebot-operator:0.1.0 .
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
# The same distribution as the services image, with the `operator` extra (kopf, kubernetes);
# pip and setuptools are removed, so the final image has no build tools.
RUN python -m venv /opt/tradebot \
    && /opt/tradebot/bin/pip install --no-cache-dir ".[operator]" \
    && /opt/tradebot/bin/pip uninstall --yes pip setuptools

# --------------------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="tradebot-operator" \
      org.opencontainers.image.description="TradeBot's Kubernetes operator: reconciles TradingStack resources" \
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
    TMPDIR=/tmp
RUN groupadd --system --gid 10001 tradebot \
    && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home \
       --shell /usr/sbin/nologin tradebot
COPY --from=build /opt/tradebot /opt/tradebot
# A writable scratch space that works with `docker run --read-only` (Kubernetes mounts an emptyDir).
VOLUME ["/tmp"]
USER 10001:10001
WORKDIR /tmp
# /healthz, /readyz and Prometheus /metrics (the chart passes --health-port 8080).
EXPOSE 8080
ENTRYPOINT ["python", "-m", "tradebot_operator"]
