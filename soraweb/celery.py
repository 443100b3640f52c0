import os

from celery import Celery
from celery.signals import beat_init, worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "soraweb.settings")

app = Celery("soraweb")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
@beat_init.connect
def start_embedded_redis(**kwargs):
    """A worker or beat started by hand on the embedded default brings its broker up."""
    from django.conf import settings

    if settings.SORAWEB_EMBEDDED_REDIS:
        from soraweb import embedded_redis

        embedded_redis.ensure_running(settings.DATA_DIR)
