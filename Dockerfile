# The marine VRE server: `vre serve` (Celery worker + gunicorn; a private Redis unless
# REDIS_URL is set). Set VRE_JOBS_DB / VRE_INDEX_DB to PostgreSQL URLs to share the job
# store and index between several hosts, and run `vre worker` on compute hosts.
FROM python:3.11-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server libexpat1 libjs-leaflet \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/vre
COPY pyproject.toml README.md pygeoapi-config.yml ./
COPY vre ./vre
COPY processes ./processes
COPY providers ./providers
COPY wps ./wps
COPY storage ./storage
COPY templates ./templates
RUN pip install --no-cache-dir -e '.[postgresql]'

ENV VRE_HOME=/data \
    VRE_HOST=0.0.0.0 \
    VRE_PORT=5000
VOLUME /data
EXPOSE 5000
CMD ["vre", "serve"]
