"""How long and how much, for the form, the cards and the video page (see jobs.estimates)."""

import json
from decimal import Decimal

from django import template
from django.conf import settings
from django.utils import timezone

from jobs import estimates

register = template.Library()


@register.filter
def jobs_json(value):
    """JSON for a data attribute (autoescaped there, so it needs no marking safe)."""
    return json.dumps(value, separators=(",", ":"))


def describe(entry, count):
    """ "Usually ready in about 6 min. Expected cost: 1.60 credits for 2." (as static/js/variants.js)"""
    learned = (
        "Usually ready" if entry["learned"] else "Likely ready (a first guess until the team has history)"
    )
    text = f"{learned} in about {estimates.minutes_text(entry['seconds'])}. "
    if entry["cost"] is None:
        return text + "Expected cost: unknown yet."
    total = Decimal(entry["cost"]) * count
    each = f" ({Decimal(entry['cost']):.2f} each)" if count > 1 else ""
    return text + f"Expected cost: {total:.2f} {settings.SORAWEB_COST_UNIT}{each}."


@register.filter
def estimate_text(form, table):
    """The sentence for the form's current choices (JavaScript keeps it current as they change)."""

    def value(name):
        raw = form[name].value()
        return str(raw if raw not in (None, "") else form.fields[name].initial or "")

    key = (
        f"{value('model') or 'openAiSora2Plus'}|{value('duration') or '8'}|{value('aspect_ratio') or '16:9'}"
    )
    entry = table.get(key)
    if not entry:
        return ""
    count = int(value("variants")) if value("variants").isdigit() else 1
    return describe(entry, count)


@register.filter
def eta_seconds(job):
    """The typical generation time of this job's kind, in seconds, for its progress bar."""
    return round(estimates.estimate(job.model, job.duration, job.aspect_ratio).seconds)


@register.filter
def epoch(moment):
    return round(moment.timestamp()) if moment else ""


@register.filter
def progress(job):
    """{started, estimate, percent, text} for a job in progress, as static/js/variants.js goes on."""
    started = job.submitted_at or job.created_at
    estimate = eta_seconds(job)
    elapsed = max(0.0, (timezone.now() - started).total_seconds())
    late = elapsed > estimate
    return {
        "started": epoch(started),
        "estimate": estimate,
        "percent": round(100 * min(0.95, elapsed / estimate)) if estimate else 0,
        "text": "Taking longer than usual"
        if late
        else f"About {estimates.minutes_text(estimate - elapsed)} left",
    }
