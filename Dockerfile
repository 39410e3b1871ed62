# voxline with the embedded default agent answering from the example knowledge file.
#   docker build -t voxline .
#   docker run -p 8000:8000 -v voxline-data:/data voxline
FROM python:3.11-slim-bookworm

# libsndfile for uploaded audio (soundfile); libgomp for the speech models' runtimes.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libsndfile1 libgomp1 \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 voxline \
    && mkdir /data && chown voxline:voxline /data

WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN pip install --no-cache-dir .
COPY examples ./examples

USER voxline
ENV VOXLINE_DATA_DIR=/data \
    VOXLINE_HOST=0.0.0.0 \
    VOXLINE_PORT=8000 \
    PYTHONUNBUFFERED=1
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=60s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"

ENTRYPOINT ["voxline"]
CMD ["serve", "--print-key", "--knowledge", "examples/knowledge/acme-dental.json"]
