from django.apps import AppConfig


class HandoverConfig(AppConfig):
    name = "handover"
    verbose_name = "Hand over: bulk actions, ZIP export, share links"
