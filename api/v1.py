"""The JSON API, /api/v1/: jobs with exactly the studio's permissions, scope and limits."""

import json
from datetime import datetime
from typing import Any, Literal

from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import re_path
from django.views.decorators.http import require_safe
from ninja import NinjaAPI, Query, Schema, Status
from ninja.errors import HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.openapi.docs import DocsBase
from pydantic import Field

from api import creating
from api.auth import SessionUser, TokenAuth
from api.errors import DEFAULT_CODES, ApiError
from api.schemas import Error, JobCreate, JobList, JobOut, JobsCreated, job_data
from jobs import actions, files, submission
from jobs.models import VideoJob, cursor_value, parse_cursor

StatusFilter = Literal[tuple([*VideoJob.TABS, *VideoJob.Status.values])]  # type: ignore[valid-type]


class Docs(DocsBase):
    """Swagger UI from our static files, started by a static script: the strict CSP holds."""

    def render_page(self, request: HttpRequest, api: NinjaAPI, **kwargs: Any):
        return render(request, "api/docs.html", {"openapi_url": self.get_openapi_url(api, kwargs)})


class Api(NinjaAPI):
    def get_openapi_schema(self, **kwargs):
        schema = super().get_openapi_schema(**kwargs)
        # The create body is read by hand (JSON or multipart), so ninja does not see its schema.
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["JobCreate"] = JobCreate.model_json_schema(ref_template="#/components/schemas/{model}")
        return schema


api = Api(
    title="soraweb API",
    version="1",
    description="Create, follow and fetch videos. Authenticate with `Authorization: Bearer <token>` "
    "(make a token on the API tokens page). See docs/api.md.",
    urls_namespace="api-v1",
    auth=[TokenAuth(), SessionUser()],
    docs=Docs(),
    docs_url="/docs",
    openapi_url="/openapi.json",
    # The schema and the docs page hold nothing private; the sign-in middleware must not redirect them.
    docs_decorator=lambda view: login_not_required(require_safe(view)),
)


def refusals(*codes: int) -> dict[int, type[Error]]:
    return {code: Error for code in (401, 429, *codes)}


def error_response(request: HttpRequest, error: ApiError):
    response = api.create_response(request, error.body(), status=error.status)
    for name, value in error.headers.items():
        response[name] = value
    return response


@api.exception_handler(ApiError)
def on_api_error(request, exc):
    return error_response(request, exc)


@api.exception_handler(HttpError)
def on_http_error(request, exc):
    status = exc.status_code
    if status == 401:
        message = "Send a valid, unrevoked API token as `Authorization: Bearer <token>`."
    elif "CSRF" in str(exc):
        message = (
            "CSRF verification failed: a request signed in with a session needs the CSRF token; "
            "scripts should use an API token."
        )
    else:
        message = str(exc)
    return error_response(request, ApiError(status, DEFAULT_CODES.get(status, "error"), message))


@api.exception_handler(Http404)
def on_not_found(request, exc):
    return error_response(request, ApiError(404, "not_found", "No such job, or you cannot see it."))


@api.exception_handler(NinjaValidationError)
def on_invalid(request, exc):
    fields: dict[str, list[str]] = {}
    for problem in exc.errors:
        name = str(problem.get("loc", ["", "?"])[-1])
        fields.setdefault(name, []).append(problem.get("msg", "invalid"))
    first = ", ".join(f"{name}: {messages[0]}" for name, messages in fields.items())
    return error_response(request, ApiError(422, "invalid", f"Invalid request ({first}).", fields=fields))


def _visible(request, pk: int) -> VideoJob:
    job = VideoJob.objects.visible_to(request.auth).select_related("owner").filter(pk=pk).first()
    if job is None:
        raise Http404
    return job


def _manageable(request, pk: int) -> VideoJob:
    job = _visible(request, pk)
    if not job.may_be_managed_by(request.auth):
        raise ApiError(403, "forbidden", "Only the job's owner or an admin can do that.")
    return job


class JobFilters(Schema):
    status: StatusFilter | None = Field(
        None, description="A tab (all, active, succeeded, failed) or one status."
    )
    model: Literal[tuple(VideoJob.Model.values)] | None = None  # type: ignore[valid-type]
    aspect_ratio: Literal[tuple(VideoJob.AspectRatio.values)] | None = None  # type: ignore[valid-type]
    # The enum, not a Literal: a query string's "4" is coerced to an enum member, never to a Literal int.
    duration: VideoJob.Duration | None = None
    owner: str | None = Field(None, description="A username.")
    created_after: datetime | None = None
    created_before: datetime | None = None
    q: str | None = Field(None, max_length=200, description="Words in the prompt.")
    cursor: str | None = Field(None, description="next_cursor from the previous page.")
    limit: int = Field(24, ge=1, le=100)


CREATE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/JobCreate"}},
            "multipart/form-data": {
                "schema": {
                    "allOf": [
                        {"$ref": "#/components/schemas/JobCreate"},
                        {
                            "type": "object",
                            "properties": {"reference_image": {"type": "string", "format": "binary"}},
                        },
                    ]
                }
            },
        },
    },
    "parameters": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "maxLength": 255},
            "description": "Repeat the create safely: the same key within 24 h returns the first answer.",
        }
    ],
}


@api.post(
    "/jobs",
    response={201: JobsCreated, **refusals(400, 403, 415, 422)},
    openapi_extra=CREATE_BODY,
    url_name="jobs",
    summary="Create a job (or several variants)",
)
def create_jobs(request):
    fields, uploads = creating.read_body(request)

    def create():
        body = creating.created_body(creating.create_jobs(request, request.auth, fields, uploads))
        return 201, api.renderer.render(request, body, response_status=201)

    key = request.headers.get("Idempotency-Key")
    if key is None:
        status, text = create()
        return HttpResponse(text, status=status, content_type=api.renderer.media_type)
    status, text, replayed = creating.idempotent(
        request.auth, key, creating.fingerprint(fields, uploads), create
    )
    response = HttpResponse(text, status=status, content_type=api.renderer.media_type)
    response["Idempotent-Replayed"] = "true" if replayed else "false"
    return response


@api.get(
    "/jobs", response={200: JobList, **refusals(422)}, url_name="jobs_list", summary="List jobs, newest first"
)
def list_jobs(request, filters: Query[JobFilters]):
    jobs = (
        VideoJob.objects.visible_to(request.auth)
        .filtered(
            status=filters.status,
            model=filters.model,
            aspect_ratio=filters.aspect_ratio,
            duration=int(filters.duration) if filters.duration else None,
            owner=filters.owner,
            created_after=filters.created_after,
            created_before=filters.created_before,
            search=filters.q,
        )
        .older_than(_cursor(filters.cursor))
        .select_related("owner")
        .order_by("-created_at", "-id")
    )
    page = list(jobs[: filters.limit + 1])
    more = len(page) > filters.limit
    page = page[: filters.limit]
    return {"items": [job_data(job) for job in page], "next_cursor": cursor_value(page[-1]) if more else None}


def _cursor(value):
    cursor = parse_cursor(value)
    if value and cursor is None:
        raise ApiError(
            422, "invalid", "That cursor is not one this API gave out.", fields={"cursor": ["Unknown."]}
        )
    return cursor


@api.get("/jobs/{int:job_id}", response={200: JobOut, **refusals(404)}, url_name="job", summary="One job")
def get_job(request, job_id: int):
    return job_data(_visible(request, job_id))


@api.delete("/jobs/{int:job_id}", response={204: None, **refusals(403, 404, 409)}, url_name="job_delete")
def delete_job(request, job_id: int):
    """Delete a finished job and its files (owner or staff)."""
    job = _manageable(request, job_id)
    if not job.is_final:
        raise ApiError(
            409, "job_in_progress", "This job is still in progress: cancel it first, then delete it."
        )
    actions.delete(job, request.auth)
    return Status(204, None)


@api.post(
    "/jobs/{int:job_id}/cancel", response={200: JobOut, **refusals(403, 404, 409)}, url_name="job_cancel"
)
def cancel_job(request, job_id: int):
    """Stop tracking a job in progress (owner or staff). The gateway has no cancel: it may still bill."""
    job = _manageable(request, job_id)
    if not actions.cancel(job, request.auth):
        raise ApiError(409, "job_finished", "This job had already finished, so there was nothing to cancel.")
    return job_data(job)


@api.post(
    "/jobs/{int:job_id}/retry", response={201: JobsCreated, **refusals(403, 404, 409)}, url_name="job_retry"
)
def retry_job(request, job_id: int):
    """A new job of yours with this job's settings and reference image."""
    job = _visible(request, job_id)
    if not job.is_final:
        raise ApiError(
            409, "job_in_progress", "This job is still in progress; wait for it to finish or cancel it."
        )
    try:
        new = submission.submit(request.auth, lambda: job.retry_as_new(request.auth))
    except submission.LimitReached as exc:
        raise ApiError(429, "limit_reached", str(exc)) from None
    except OSError:
        raise ApiError(
            409,
            "reference_missing",
            "This job's reference image is missing from storage, so it cannot be repeated.",
        ) from None
    return Status(201, creating.created_body([new]))


BINARY = {"description": "The file; a Range request gets 206.", "content": {"video/mp4": {}}}


@api.get(
    "/jobs/{int:job_id}/video",
    response=refusals(404),
    url_name="job_video",
    openapi_extra={"responses": {200: BINARY, 206: BINARY}},
)
def job_video(request, job_id: int):
    return files.response(request, _visible(request, job_id).video, "video/mp4")


@api.get(
    "/jobs/{int:job_id}/poster",
    response=refusals(404),
    url_name="job_poster",
    openapi_extra={"responses": {200: {"description": "A JPEG frame.", "content": {"image/jpeg": {}}}}},
)
def job_poster(request, job_id: int):
    return files.response(request, _visible(request, job_id).poster, "image/jpeg", max_age=86400)


def urls():
    """The API's URL patterns, each exempt from the site's sign-in redirect: it answers 401 itself."""
    patterns, app_name, namespace = api.urls
    # Last: any other path under /api/v1/ is a JSON 404, not the site's HTML page.
    patterns.append(re_path(r"^.*$", _no_such_path))
    for pattern in patterns:
        login_not_required(pattern.callback)
    return patterns, app_name, namespace


def _no_such_path(request):
    error = ApiError(404, "not_found", "There is no such API path; see /api/v1/docs.")
    return HttpResponse(json.dumps(error.body()), status=404, content_type="application/json")
