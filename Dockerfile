# soraweb for a team server: one image for web, worker, beat and the simulator.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DATA_DIR=/data \
    STATIC_ROOT=/app/staticfiles \
    PIP_NO_CACHE_DIR=1

RUN groupadd --system soraweb && useradd --system --gid soraweb --home /app soraweb

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY --chown=soraweb:soraweb . .
# Static files are collected at build time into the image (STATIC_ROOT, not the /data volume):
# content-hashed names, pre-compressed, served by WhiteNoise with a year-long cache lifetime.
RUN SECRET_KEY=build-only-not-a-secret-0123456789abcdef DATA_DIR=/tmp/build REDIS_URL=redis://unused:6379/0 \
    python manage.py collectstatic --noinput \
    && mkdir -p /data && chown soraweb:soraweb /data

USER soraweb
VOLUME ["/data"]
EXPOSE 8000
CMD ["gunicorn", "soraweb.wsgi:application", "--bind=0.0.0.0:8000", "--workers=3", "--threads=4", "--timeout=120", "--access-logfile=-"]
