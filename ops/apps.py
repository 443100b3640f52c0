from django.apps import AppConfig


class OpsConfig(AppConfig):
    """Running a server: outage pages, storage for staff, backup and restore."""

    name = "ops"
