# syntax=docker/dockerfile:1
# The zdlab demo service image: `docker build --build-arg VERSION=v2 -t zdlab/demo:v2 .`
# Only the service and its two dependencies (FastAPI, uvicorn) end up in it; it runs as a
# numeric non-root user and writes nothing at run time (fine with readOnlyRootFilesystem).
ARG PYTHON_IMAGE=python:3.12-slim

FROM ${PYTHON_IMAGE} AS build
ARG VERSION=v1
ARG IMAGE_ID=zdlab/demo:${VERSION}
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1
COPY pyproject.toml README.md /src/
COPY lab_app /src/lab_app
# `pip install .` (no extras) brings only the base dependencies, fastapi and uvicorn. Then the
# image keeps the service package alone: it must not need any other part of the lab. (Run from
# /, not /src, so `import lab_app` finds the installed copy, not the sources.)
WORKDIR /
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install /src \
 && site="$(/opt/venv/bin/python -c 'import lab_app, os; print(os.path.dirname(lab_app.__file__))')" \
 && find "$site" -mindepth 1 -maxdepth 1 ! -name service ! -name __init__.py -exec rm -rf {} + \
 && /opt/venv/bin/python -c "import os; from lab_app.service.config import write_build_info as w; w(os.environ['VERSION'], os.environ['IMAGE_ID'])" \
 && /opt/venv/bin/python -m compileall -q "$site" \
 && /opt/venv/bin/python -c "from lab_app.service.config import load_config; from lab_app.service.app import create_app; create_app(load_config())"

FROM ${PYTHON_IMAGE} AS runtime
ARG VERSION=v1
ARG IMAGE_ID=zdlab/demo:${VERSION}
LABEL org.opencontainers.image.title="zdlab demo service" \
      org.opencontainers.image.description="FastAPI port of the Spring Boot zero-downtime rolling-update demo" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      io.zdlab.image-id="${IMAGE_ID}"
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    APP_VERSION=${VERSION}
COPY --from=build /opt/venv /opt/venv
WORKDIR /
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8080/healthz/live', timeout=2)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "-m", "lab_app.service", "--host", "0.0.0.0", "--port", "8080"]
