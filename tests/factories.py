"""Plain helpers for making rows in tests."""

from django.contrib.auth import get_user_model

from jobs.models import VideoJob


def make_job(owner=None, **overrides):
    if owner is None:
        owner, _ = get_user_model().objects.get_or_create(username="alice")
    fields = {"prompt": "a paper boat on a stream", "model": "openAiSora2Plus", "aspect_ratio": "16:9"}
    fields.update(overrides)
    return VideoJob.objects.create(owner=owner, **fields)
