"""Logging filters named in settings.LOGGING."""

import logging


class OneLineClientErrors(logging.Filter):
    """Drop the traceback from Django's records of requests answered 4xx.

    A PermissionDenied or a SuspiciousOperation is the answer working as meant; its
    one-line message (path and reason) is all an operator needs. 5xx keep theirs.
    """

    def filter(self, record):
        django_answer = record.name.startswith(("django.request", "django.security"))
        if django_answer and getattr(record, "status_code", 500) < 500:
            record.exc_info = None
            record.exc_text = None
        return True
