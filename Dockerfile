# The gateway: slim, runs unprivileged, with a health check. GPU hosts run worker/Dockerfile.
#   docker build -t video-gateway .
#   docker run -p 8000:8000 -v $PWD/data:/srv/data video-gateway
# Any Debian-based Python (>= 3.11) image can be the base:
#   docker build --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm -t video-gateway .
ARG PYTHON_IMAGE=python:3.12-slim
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# CJK fonts so the preview renderer draws Chinese, Japanese and Korean prompts (fontconfig
# finds them: `fc-list :lang=zh`).
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-noto-cjk fontconfig \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /srv
COPY requirements.txt .
RUN pip install -r requirements.txt

RUN useradd --system --uid 10001 --home-dir /srv --no-create-home gateway \
    && mkdir -p /srv/data && chown gateway /srv/data
COPY deploy/docker-entrypoint.sh /usr/local/bin/vgw-entrypoint
COPY app ./app
# The Dify DSL files, served with this gateway's URL filled in (GET /dify/workflows).
COPY dify_workflow.yml ./
COPY dify ./dify
RUN python -m compileall -q app

ENV VGW_SERVER__HOST=0.0.0.0 \
    VGW_SERVER__DATA_DIR=/srv/data
EXPOSE 8000
VOLUME ["/srv/data"]
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"

# The entrypoint makes /srv/data writable for the `gateway` user (uid 10001), then runs the
# command as that user; `docker run --user …` skips that step.
ENTRYPOINT ["vgw-entrypoint"]
CMD ["python", "-m", "app", "serve"]
