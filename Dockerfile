# stackvote: a small, non-root image, installed from wheels made beforehand, with no network:
#   scripts/image-wheels && docker build -t stackvote .
# (scripts/image-wheels puts the project's wheel and exactly the versions constraints/image.txt
# pins, the ones CI tests, into deploy/wheels/ for this base image's Python.)
FROM python:3.12.8-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    STACKVOTE_HOST=0.0.0.0 \
    STACKVOTE_PORT=8000 \
    STACKVOTE_DATA_DIR=/data
COPY deploy/wheels/ /tmp/wheels/
# /data: the built-in store's file when no Redis is configured (docker run -v NAME:/data keeps
# it); compose sets STACKVOTE_REDIS_URL, so its instances never use it.
RUN test -n "$(ls /tmp/wheels/stackvote-*.whl 2>/dev/null)" \
        || { echo "deploy/wheels/ is empty: run scripts/image-wheels first" >&2; exit 1; } \
    && pip install --no-cache-dir --no-index --find-links /tmp/wheels stackvote \
    && rm -rf /tmp/wheels \
    && useradd --system --uid 10001 --no-create-home stackvote \
    && mkdir /data && chown stackvote /data
USER stackvote
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2)"]
CMD ["stackvote", "serve"]
