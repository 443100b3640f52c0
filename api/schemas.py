"""What the API answers, as pydantic schemas: the OpenAPI document is generated from these."""

from datetime import datetime
from typing import Literal

from django.urls import reverse
from ninja import Schema
from pydantic import Field

from jobs.models import VideoJob

StatusName = Literal[tuple(VideoJob.Status.values)]  # type: ignore[valid-type]


class ErrorBody(Schema):
    code: str = Field(description="Stable, for scripts: e.g. not_found, limit_reached, conflict.")
    message: str = Field(description="What went wrong, in words a person can act on.")
    fields: dict[str, list[str]] | None = Field(None, description="Per-field problems, on invalid input.")


class Error(Schema):
    error: ErrorBody


class JobOut(Schema):
    id: int
    prompt: str
    model: str
    aspect_ratio: str
    duration: int = Field(description="Seconds asked for.")
    size: str = Field(description="The gateway's pixel size, WxH.")
    has_reference_image: bool
    reference_note: str
    owner: str = Field(description="The owner's username.")
    status: StatusName
    status_label: str
    is_final: bool
    failure_kind: str | None
    failure_label: str | None
    reason: str | None = Field(description="Why it failed, was cancelled or needs attention, for a person.")
    eta: datetime | None = Field(description="When the video is expected; null while unknown.")
    upstream_id: str | None = Field(description="The gateway's id for this job.")
    upstream_status: str
    cost: str | None = Field(description="What the gateway charged, as a decimal string.")
    actual_duration: float | None
    retry_of: int | None
    created_at: datetime
    submitted_at: datetime | None
    completed_at: datetime | None
    updated_at: datetime
    url: str = Field(description="This job in the API.")
    video_url: str | None
    poster_url: str | None


class JobList(Schema):
    items: list[JobOut]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next (older) page; null at the end."
    )


class JobsCreated(Schema):
    jobs: list[JobOut] = Field(description="One job per variant, in order.")


class JobCreate(Schema):
    """As JSON, or the same fields as multipart/form-data with a reference_image file."""

    prompt: str = Field(max_length=4000)
    model: Literal[tuple(VideoJob.Model.values)] = VideoJob.Model.PLUS  # type: ignore[valid-type]
    aspect_ratio: Literal[tuple(VideoJob.AspectRatio.values)] = VideoJob.AspectRatio.LANDSCAPE  # type: ignore[valid-type]
    duration: Literal[tuple(VideoJob.Duration.values)] = VideoJob.Duration.MEDIUM  # type: ignore[valid-type]
    reference_from: int | None = Field(
        None, description="The id of a job you can see whose reference image this job reuses."
    )
    variants: int = Field(1, ge=1, le=4, description="How many jobs with these settings to make.")


def job_data(job: VideoJob) -> dict:
    """A job as the API (and a webhook's payload) shows it."""
    final_reason = (
        job.error
        if job.status in (VideoJob.Status.FAILED, VideoJob.Status.CANCELLED, VideoJob.Status.UNKNOWN)
        else ""
    )
    return {
        "id": job.pk,
        "prompt": job.prompt,
        "model": job.model,
        "aspect_ratio": job.aspect_ratio,
        "duration": int(job.duration),
        "size": job.size,
        "has_reference_image": bool(job.reference_image),
        "reference_note": job.reference_note,
        "owner": job.owner.get_username(),
        "status": job.status,
        "status_label": job.get_status_display(),
        "is_final": job.is_final,
        "failure_kind": job.failure_kind or None,
        "failure_label": job.get_failure_kind_display() if job.failure_kind else None,
        "reason": final_reason or None,
        "eta": None,
        "upstream_id": job.upstream_id,
        "upstream_status": job.upstream_status,
        "cost": str(job.cost) if job.cost is not None else None,
        "actual_duration": job.actual_duration,
        "retry_of": job.retry_of_id,
        "created_at": job.created_at,
        "submitted_at": job.submitted_at,
        "completed_at": job.completed_at,
        "updated_at": job.updated_at,
        "url": reverse("api-v1:job", args=[job.pk]),
        "video_url": reverse("api-v1:job_video", args=[job.pk]) if job.video else None,
        "poster_url": reverse("api-v1:job_poster", args=[job.pk]) if job.poster else None,
    }
