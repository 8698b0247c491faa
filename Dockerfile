# One image for web, Celery worker and beat. Two stages: "build" makes the virtualenv
# (compilers and pip caches stay behind), "runtime" copies it and runs as a non-root user.
#
# The venv lives at /app/.venv, the same place scripts/bootstrap.sh puts it, so the
# containers run the Procfile's commands verbatim (.venv/bin/python -m ...).
#
# torch comes from the PyTorch wheel index named by TORCH_INDEX_URL: the CPU build by
# default (small; laptops and the CPU worker), a CUDA build for the GPU worker, e.g.
#   docker compose build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY requirements.txt constraints.txt ./
# torch first, from its own index; the full pin set then finds torch==2.13.0 satisfied
# (2.13.0+cpu / +cu128 match the "==2.13.0" pin) and takes everything else from PyPI.
# The stamp is the one scripts/bootstrap.sh writes, so start.sh inside the image skips pip.
RUN python -m venv .venv \
 && .venv/bin/pip install --index-url "$TORCH_INDEX_URL" -c constraints.txt torch \
 && .venv/bin/pip install -r requirements.txt -c constraints.txt \
 && touch ".venv/.installed-$(cat requirements.txt constraints.txt | sha256sum | cut -c1-16)"

FROM ${PYTHON_IMAGE} AS runtime
# uid/gid 1000 by default so bind-mounted folders on a typical Linux host stay writable.
ARG APP_UID=1000
ARG APP_GID=1000
RUN groupadd --gid "$APP_GID" app \
 && useradd --uid "$APP_UID" --gid app --create-home --shell /usr/sbin/nologin app
WORKDIR /app
COPY --from=build /app/.venv /app/.venv
# The code stays root-owned (read-only to the app); only var/ and the data folders are
# writable. Named volumes copy this ownership when they are first mounted, empty.
COPY . .
RUN mkdir -p var /data/media /data/prepared /data/runs /data/huggingface \
 && chown -R app:app var /data \
 && DEBUG=0 SECRET_KEY=collectstatic-only-not-a-secret STATIC_ROOT=/app/staticfiles \
    .venv/bin/python manage.py collectstatic --noinput --verbosity 0
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    STATIC_ROOT=/app/staticfiles \
    MEDIA_ROOT=/data/media \
    PREPARED_ROOT=/data/prepared \
    RUNS_ROOT=/data/runs \
    HF_HOME=/data/huggingface
USER app
EXPOSE 8000
# The Procfile's "web" line with the container's host/port; compose sets each service's own.
CMD [".venv/bin/python", "-m", "uvicorn", "webapp.asgi:application", "--host", "0.0.0.0", "--port", "8000"]
