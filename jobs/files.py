"""Sending stored files to people already allowed to see them: Range, offload, signed URLs."""

import mimetypes
import re
from typing import IO
from urllib.parse import quote

from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.db.models.fields.files import FieldFile
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect
from django.utils.http import content_disposition_header


def image_type(name: str | None) -> str:
    guessed = mimetypes.guess_type(name or "")[0]
    # Stored references are re-encoded JPEGs; anything else is never labelled as something a browser runs.
    return guessed if guessed in ("image/jpeg", "image/png", "image/webp") else "application/octet-stream"


def response(
    request: HttpRequest,
    field: FieldFile,
    content_type: str,
    *,
    filename: str | None = None,
    as_attachment: bool = False,
    max_age: int = 3600,
    offload: bool = True,
) -> HttpResponseBase:
    """Send a stored file to someone already allowed to see it.

    Behind nginx (MEDIA_ACCEL_PREFIX) nginx sends it; on object storage (S3_BUCKET) the
    browser is sent to a short-lived signed URL; otherwise Django streams it, answering
    a single `Range: bytes=` request with 206, which players need to seek.
    """
    if not field:
        raise Http404
    disposition = content_disposition_header(as_attachment, filename) if filename else None
    if offload and settings.MEDIA_ACCEL_PREFIX and isinstance(field.storage, FileSystemStorage):
        response: HttpResponseBase = HttpResponse(content_type=content_type)
        response["X-Accel-Redirect"] = settings.MEDIA_ACCEL_PREFIX.rstrip("/") + "/" + quote(field.name or "")
        if disposition:
            response["Content-Disposition"] = disposition
    elif offload and settings.S3_BUCKET:
        response = redirect(_signed_url(field, content_type, disposition))
    else:
        response = _stream(request, field, content_type, disposition)
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = f"private, max-age={max_age}"
    return response


def _signed_url(field, content_type, disposition):
    parameters = {"ResponseContentType": content_type}
    if disposition:
        parameters["ResponseContentDisposition"] = disposition
    try:
        return field.storage.url(field.name, parameters=parameters)
    except TypeError:  # A storage without per-URL response headers.
        return field.url


def _stream(
    request: HttpRequest, field: FieldFile, content_type: str, disposition: str | None
) -> HttpResponseBase:
    try:
        size = field.size
        handle = field.open("rb")
    except OSError:
        raise Http404 from None
    try:
        requested = byte_range(request.headers.get("Range"), size)
    except ValueError:
        handle.close()
        response: HttpResponseBase = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
    else:
        if requested is None:
            response = FileResponse(handle, content_type=content_type)
        else:
            start, end = requested
            response = FileResponse(
                _Slice(handle, start, end - start + 1), status=206, content_type=content_type
            )
            response["Content-Length"] = end - start + 1
            response["Content-Range"] = f"bytes {start}-{end}/{size}"
    # Set here, not by FileResponse, which would name inline files after their storage path.
    if disposition:
        response["Content-Disposition"] = disposition
    elif "Content-Disposition" in response:
        del response["Content-Disposition"]
    response["Accept-Ranges"] = "bytes"
    return response


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end), inclusive, for a single byte range; None to send it all; ValueError if unsatisfiable."""
    unit, _, spec = (header or "").partition("=")
    # Other units and several ranges may be ignored (RFC 9110): the whole file is a valid answer.
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    match = re.fullmatch(r"\s*(\d*)\s*-\s*(\d*)\s*", spec)
    if not match or not (match[1] or match[2]):
        raise ValueError(header)
    if match[1]:
        start = int(match[1])
        end = min(int(match[2]), size - 1) if match[2] else size - 1
        if start >= size or end < start:
            raise ValueError(header)
        return start, end
    suffix = int(match[2])
    if suffix == 0 or size == 0:
        raise ValueError(header)
    return max(0, size - suffix), size - 1


class _Slice:
    """The bytes [start, start + length) of an open file, read the way FileResponse reads."""

    def __init__(self, handle: IO[bytes], start: int, length: int) -> None:
        handle.seek(start)
        self.handle = handle
        self.remaining = length

    def read(self, size: int | None = -1) -> bytes:
        if self.remaining <= 0:
            return b""
        size = self.remaining if size is None or size < 0 else min(size, self.remaining)
        data = self.handle.read(size)
        self.remaining -= len(data)
        return data

    def close(self) -> None:
        self.handle.close()
