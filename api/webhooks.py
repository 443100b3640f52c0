"""Webhooks: queue an event per finished job, send it signed, retry from the database.

Jobs know nothing of webhooks: the sweep here reads the jobs that finished since
its watermark (completed_at), so no signal or hook reaches into jobs/.
"""

import hashlib
import hmac
import json
import logging
import time
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from api.models import Watermark, Webhook, WebhookDelivery, webhook_timeout
from api.schemas import JobOut, job_data
from jobs import upstream
from jobs.models import VideoJob

log = logging.getLogger(__name__)

# A job's completed_at is written before its transaction commits, so a job can appear
# behind the watermark; each sweep looks back this far (the unique constraint dedups).
LOOKBACK = timedelta(minutes=5)
WATERMARK = "webhooks"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The X-Soraweb-Signature value: sha256=HMAC-SHA256(secret, "<timestamp>.<body>")."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def payload(event: str, job: VideoJob | None) -> dict[str, Any]:
    data = JobOut.model_validate(job_data(job)).model_dump() if job else None
    return json.loads(json.dumps({"event": event, "job": data}, cls=DjangoJSONEncoder))


def check_url(url: str) -> None:
    """Refuse a receiver soraweb must not call: https only (http for trusted hosts), no private address."""
    parts = urlsplit(url)
    host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ValidationError("That is not a valid address.") from None
    trusted = f"{host}:{port}".lower() in {entry.lower() for entry in settings.SORA_TRUSTED_PRIVATE_HOSTS}
    if parts.scheme != "https" and not trusted:
        raise ValidationError("Webhook addresses must start with https://.")
    try:
        upstream.check_fetchable(url)
    except upstream.UnsafeURL:
        raise ValidationError(
            "That address is on a private network; soraweb only calls public addresses "
            "(an admin can trust a private host with SORA_TRUSTED_PRIVATE_HOSTS)."
        ) from None
    except upstream.Transient:
        raise ValidationError("That host name could not be found.") from None


def queue_finished(now: datetime | None = None) -> int:
    """Queue one delivery per (webhook, finished job, event) since the watermark; returns how many it saw."""
    now = now or timezone.now()
    hooks = list(Webhook.objects.filter(active=True).select_related("owner"))
    mark, _ = Watermark.objects.get_or_create(name=WATERMARK, defaults={"reached": now})
    if not hooks:
        # Kept near now, so a first webhook does not start with a long read; written rarely.
        if mark.reached < now - LOOKBACK:
            Watermark.objects.filter(name=WATERMARK).update(reached=now)
        return 0
    since = mark.reached - LOOKBACK
    jobs = list(
        VideoJob.objects.filter(completed_at__gte=since, completed_at__lte=now, status__in=VideoJob.FINAL)
        .select_related("owner")
        .order_by("completed_at")[:1000]
    )
    # The look-back sees most jobs again: skip those already queued rather than build their payloads.
    queued = set(
        WebhookDelivery.objects.filter(job__in=[job.pk for job in jobs]).values_list("webhook_id", "job_id")
    )
    rows = []
    for job in jobs:
        event = WebhookDelivery.FOR_STATUS[job.status]
        body = None
        for hook in hooks:
            if (hook.pk, job.pk) in queued:
                continue
            if hook.covers(job) and job.completed_at >= hook.created_at:
                body = body or payload(event, job)
                rows.append(
                    WebhookDelivery(webhook=hook, job=job, event=event, payload=body, next_attempt_at=now)
                )
    WebhookDelivery.objects.bulk_create(rows, ignore_conflicts=True)
    reached = jobs[-1].completed_at if len(jobs) == 1000 else now
    Watermark.objects.filter(name=WATERMARK).update(reached=max(mark.reached, reached))
    return len(rows)


def queue_test(hook: Webhook) -> WebhookDelivery:
    return WebhookDelivery.objects.create(
        webhook=hook,
        event=WebhookDelivery.Event.TEST,
        payload=payload("test", None),
        next_attempt_at=timezone.now(),
    )


def deliver(delivery: WebhookDelivery) -> None:
    """One attempt: POST the payload, signed; the row records the answer and the next try."""
    body = json.dumps(
        {**delivery.payload, "delivery_id": delivery.pk, "attempt": delivery.attempts + 1},
        separators=(",", ":"),
    ).encode()
    timestamp = str(int(time.time()))
    headers = {
        "X-Soraweb-Event": delivery.event,
        "X-Soraweb-Delivery": str(delivery.pk),
        "X-Soraweb-Timestamp": timestamp,
        "X-Soraweb-Signature": sign(delivery.webhook.secret, timestamp, body),
    }
    started = time.monotonic()
    status, error = None, ""
    try:
        status = upstream.post_pinned(delivery.webhook.url, body, headers, timeout=webhook_timeout())
        if not 200 <= status < 300:
            error = f"the receiver answered HTTP {status}"
    except upstream.UnsafeURL:
        error = "refused: the address is on a private network"
    except upstream.Transient as exc:
        error = str(exc)
    except requests.RequestException as exc:
        error = f"could not be reached ({type(exc).__name__})"
    millis = int((time.monotonic() - started) * 1000)
    delivery.record(status, error, millis)
    log.info(
        "webhook delivery %s (%s) attempt %s: %s",
        delivery.pk,
        delivery.event,
        delivery.attempts,
        status or error,
    )
