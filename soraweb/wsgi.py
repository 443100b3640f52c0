import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "soraweb.settings")

application = get_wsgi_application()

# Here rather than in AppConfig.ready(): only a starting web server shows the setup
# code (gunicorn alone logs it to `docker compose logs web`); `manage.py check`,
# workers and shells never make one.
from jobs import firstrun  # noqa: E402

firstrun.announce()
