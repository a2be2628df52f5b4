# The gateway: slim, non-root, with a health check. GPU hosts run worker/Dockerfile instead.
FROM python:3.12-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /srv
COPY requirements.txt .
RUN pip install -r requirements.txt

RUN useradd --system --uid 10001 --home /srv gateway \
    && mkdir -p /srv/data && chown gateway /srv/data
COPY app ./app
# The Dify DSL files, served with this gateway's URL filled in (GET /dify/workflows).
COPY dify_workflow.yml ./
COPY dify ./dify
USER gateway

ENV VGW_SERVER__HOST=0.0.0.0 \
    VGW_SERVER__DATA_DIR=/srv/data
EXPOSE 8000
VOLUME ["/srv/data"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"

CMD ["python", "-m", "app", "serve"]
