"""Who did what to jobs, limits and the budget: audit.record() from the places actions happen."""

from typing import Any

from django.utils.text import Truncator


def record(actor: Any, action: str, job: Any = None, target: str = "", **details: Any) -> None:
    """Write one AuditEvent; actor may be None (the system) and job a VideoJob or None."""
    from audit.models import AuditEvent  # Not at import time: the app registry may not be ready.

    AuditEvent.objects.create(
        actor=actor if actor is not None and actor.pk else None,
        actor_name=actor.get_username() if actor is not None else "system",
        action=action,
        job_id=job.pk if job is not None else None,
        job_label=Truncator(job.prompt).chars(60) if job is not None else "",
        target=target,
        details=details,
    )
