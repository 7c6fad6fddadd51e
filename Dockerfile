# stackvote: a small, non-root image. Build: docker build -t stackvote .
FROM python:3.12.8-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY server ./server
COPY templates ./templates
COPY static ./static
RUN pip install --no-cache-dir --disable-pip-version-check build==1.2.2 \
    && python -m build --wheel --outdir /dist

FROM python:3.12.8-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    STACKVOTE_HOST=0.0.0.0 \
    STACKVOTE_PORT=8000 \
    STACKVOTE_DATA_DIR=/data
COPY --from=build /dist/*.whl /tmp/
# /data: the built-in store's file when no Redis is configured (docker run -v NAME:/data keeps
# it); compose sets STACKVOTE_REDIS_URL, so its instances never use it.
RUN pip install --no-cache-dir --disable-pip-version-check /tmp/*.whl \
    && rm /tmp/*.whl \
    && useradd --system --uid 10001 --no-create-home stackvote \
    && mkdir /data && chown stackvote /data
USER stackvote
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2)"]
CMD ["stackvote", "serve"]
