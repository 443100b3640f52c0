"""Creating jobs from an API request: the form's validation, the submission door, Idempotency-Key."""

import hashlib
import json
from collections.abc import Callable
from typing import Any

from django.db import IntegrityError, transaction
from django.http import HttpRequest

from api.errors import ApiError
from api.models import IdempotencyKey
from api.schemas import JobsCreated, job_data
from jobs import submission
from jobs.forms import VideoJobForm
from jobs.models import VideoJob

EXTRA_FIELDS = ("reference_from", "variants")


def read_body(request: HttpRequest) -> tuple[dict[str, Any], dict[str, Any]]:
    """(fields, files) from a JSON or a multipart/form-data body."""
    if request.content_type == "application/json":
        try:
            data = json.loads(request.body or b"null")
        except ValueError:
            raise ApiError(400, "invalid_json", "The request body is not valid JSON.") from None
        if not isinstance(data, dict):
            raise ApiError(400, "invalid_json", "The request body must be a JSON object.")
        return data, {}
    if request.content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        return request.POST.dict(), request.FILES.dict()
    raise ApiError(
        415 if request.body else 400,
        "unsupported_media_type",
        "Send the job as application/json, or as multipart/form-data with a reference_image file.",
    )


def fingerprint(fields: dict[str, Any], files: dict[str, Any]) -> str:
    """SHA-256 of the request's canonical JSON and its files' digests: what "the same request" means."""
    digests = {}
    for name, upload in sorted(files.items()):
        hashed = hashlib.sha256()
        for chunk in upload.chunks():
            hashed.update(chunk)
        upload.seek(0)
        digests[name] = hashed.hexdigest()
    canonical = json.dumps(
        {"fields": fields, "files": digests}, sort_keys=True, separators=(",", ":"), default=str
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def create_jobs(
    request: HttpRequest, user: Any, fields: dict[str, Any], files: dict[str, Any]
) -> list[VideoJob]:
    """Validate as the form does, then submit through jobs.submission (limits apply); raises ApiError."""
    unknown = sorted(set(fields) - set(VideoJob.SETTINGS) - set(EXTRA_FIELDS)) + sorted(
        set(files) - {"reference_image"}
    )
    if unknown:
        raise ApiError(
            422,
            "invalid",
            f"Unknown field(s): {', '.join(unknown)}.",
            fields={n: ["Unknown field."] for n in unknown},
        )
    variants = _whole_number(fields.get("variants", 1), "variants")
    if not 1 <= variants <= VideoJob.MAX_VARIANTS:
        allowed = f"1 to {VideoJob.MAX_VARIANTS}"
        raise ApiError(422, "invalid", f"variants must be {allowed}.", fields={"variants": [f"{allowed}."]})
    data = {name: fields[name] for name in VideoJob.SETTINGS if fields.get(name) is not None}
    for name in VideoJob.CHOICES:
        data.setdefault(name, VideoJob._meta.get_field(name).default)
    form = VideoJobForm(data, files, refused_uploads=getattr(request, "refused_uploads", None))
    if not form.is_valid():
        problems = {
            name: [error["message"] for error in errors]
            for name, errors in form.errors.get_json_data().items()
        }
        first = next(iter(problems.values()))[0]
        raise ApiError(422, "invalid", first, fields=problems)
    source = _reference_source(user, fields.get("reference_from"), form)

    jobs: list[VideoJob] = []

    def first():
        job = form.save(commit=False)
        job.owner = user
        if source:
            job.share_reference_from(source)
        job.save()
        jobs.append(job)
        return job

    def another():
        # The variants share the first one's stored image, as the form's do.
        job = VideoJob(owner=user, **jobs[0].job_settings())
        job.share_reference_from(jobs[0])
        job.save()
        return job

    try:
        return submission.submit_many(user, [first] + [another] * (variants - 1))
    except submission.LimitReached as exc:
        raise ApiError(429, "limit_reached", str(exc)) from None
    except OSError:
        raise ApiError(
            422,
            "reference_missing",
            "That job's reference image is missing from storage; upload the image instead.",
        ) from None


def _whole_number(value: Any, name: str) -> int:
    try:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError
        return int(value)
    except (TypeError, ValueError):
        raise ApiError(
            422, "invalid", f"{name} must be a whole number.", fields={name: ["A whole number."]}
        ) from None


def _reference_source(user: Any, reference_from: Any, form: VideoJobForm) -> VideoJob | None:
    """The visible job whose reference image a new job reuses (reference_from), or None."""
    if reference_from in (None, ""):
        return None

    def refuse(message):
        return ApiError(422, "invalid", message, fields={"reference_from": [message]})

    pk = _whole_number(reference_from, "reference_from")
    if form.cleaned_data.get("reference_image"):
        raise refuse("Send either a reference_image or reference_from, not both.")
    if not form.references_allowed:
        raise refuse("Reference images are turned off on this server (PUBLIC_BASE_URL is not set).")
    source = VideoJob.objects.visible_to(user).filter(pk=pk).first()
    if source is None or not source.reference_image:
        raise refuse(f"No job you can see with id {pk} has a reference image.")
    if source.aspect_ratio != form.cleaned_data["aspect_ratio"]:
        raise refuse(
            f"Job {pk}'s image is cropped for {source.aspect_ratio}; ask for that aspect_ratio or upload one."
        )
    return source


def idempotent(
    user: Any, key: str, print_: str, create: Callable[[], tuple[int, dict]]
) -> tuple[int, dict, bool]:
    """(status, body, replayed): create()'s answer, or the stored first answer to this key.

    The key's row is inserted before the jobs, in the same transaction: a concurrent
    request with the same key waits on the unique constraint (PostgreSQL) or on the
    write lock (SQLite, IMMEDIATE) until the first commits, then replays its answer.
    A refused create rolls back, key and all, so the request can be repeated.
    """
    if not 1 <= len(key) <= 255:
        raise ApiError(422, "invalid_idempotency_key", "An Idempotency-Key must be 1 to 255 characters.")
    with transaction.atomic():
        stored = IdempotencyKey.objects.filter(user=user, key=key).first()
        if stored and stored.expired:
            stored.delete()
            stored = None
        if stored is None:
            try:
                with transaction.atomic():
                    row = IdempotencyKey.objects.create(
                        user=user, key=key, fingerprint=print_, status_code=0, body={}
                    )
            except IntegrityError:
                stored = IdempotencyKey.objects.get(user=user, key=key)
            else:
                status, body = create()
                row.status_code, row.body = status, body
                row.save(update_fields=["status_code", "body"])
                return status, body, False
    if stored.fingerprint != print_:
        raise ApiError(
            422,
            "idempotency_key_reused",
            "This Idempotency-Key was already used with a different request in the last 24 hours.",
        )
    return stored.status_code, stored.body, True


def created_body(jobs: list[VideoJob]) -> dict:
    """The 201 answer, checked against its schema; stored as JSON for replays."""
    return JobsCreated.model_validate({"jobs": [job_data(job) for job in jobs]}).model_dump()
