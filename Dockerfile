# syntax=docker/dockerfile:1
# trade-review: one uvicorn worker per container (Knative scales replicas, not workers).
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/app/.venv \
    PATH=/app/.venv/bin:$PATH \
    PORT=8080 \
    HOST=0.0.0.0

WORKDIR /app

# Dependencies first (cached layer); hash-pinned, as in development.
COPY requirements/ requirements/
RUN python -m venv /app/.venv \
    && pip install --no-cache-dir --require-hashes -r requirements/bootstrap.txt \
    && uv pip install --no-cache --compile-bytecode --python /app/.venv/bin/python \
       --require-hashes -r requirements/runtime.txt

COPY alembic.ini ./
COPY migrations/ migrations/
COPY config/ config/
COPY app/ app/
# Bytecode compiled at build time: a cold start (Knative scale-from-zero) skips compiling.
RUN python -m compileall -q app migrations

# The build's identity: `docker build --build-arg BUILD_SHA=$(git rev-parse --short=12 HEAD)`.
# It names the Knative revision (knative/service.yaml), is on every review's lineage and on
# /metrics as trade_review_build_info{build_sha, image_digest}.
ARG BUILD_SHA=dev
ENV BUILD_SHA=${BUILD_SHA}
LABEL org.opencontainers.image.revision=${BUILD_SHA}

RUN useradd --system --uid 10001 --home-dir /app reviewer \
    && mkdir -p /app/var && chown reviewer /app/var
USER 10001

EXPOSE 8080
# Migrations run as a separate Job in the cluster (knative/migrate-job.yaml).
CMD ["python", "-m", "app", "serve"]
