"""What people do to jobs that already exist, each written once to the audit record.

New jobs enter by jobs.submission; the studio, the admin, the desk, bulk actions and
the API all cancel, delete and attach through these, so none of them can forget the record.
"""

from typing import Any

import audit
from jobs import media
from jobs.models import VideoJob


def cancel(job: VideoJob, by: Any) -> bool:
    """Stop tracking a job in progress; False when it had already finished."""
    if not job.cancel():
        return False
    audit.record(by, "cancelled", job)
    return True


def delete(job: VideoJob, by: Any) -> None:
    """Delete a finished job and its files; what it cost stays counted (VideoJob.delete keeps its Usage)."""
    audit.record(by, "deleted", job)
    media.delete_files(job)
    job.delete()


def attach(job: VideoJob, upstream_id: str, by: Any) -> None:
    """Give an unknown job the gateway's id (raises AttachRefused); the sweep checks it at once."""
    job.attach_upstream_id(upstream_id, by=by)
    audit.record(by, "attached_id", job, upstream_id=job.upstream_id)
