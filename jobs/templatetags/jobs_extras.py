"""Words and numbers for job pages: plain labels people understand, not state names."""

from datetime import timedelta

from django import template
from django.utils import timezone
from django.utils.timesince import timesince

from jobs.models import VideoJob

register = template.Library()
Status = VideoJob.Status

TONES = {Status.SUCCEEDED: "ok", Status.FAILED: "bad", Status.UNKNOWN: "warn", Status.CANCELLED: "muted"}
STAGE_HINTS = {
    Status.PENDING: "Waiting for a worker to send it to the video service.",
    Status.SUBMITTING: "Sending it to the video service.",
    Status.QUEUED: "The video service has it in its queue.",
    Status.PROCESSING: "The video service is generating it; this usually takes 2 to 15 minutes.",
    Status.DOWNLOADING: "Finished at the service; copying it into this studio's storage.",
}
ORIENTATIONS = {VideoJob.AspectRatio.LANDSCAPE: "Landscape", VideoJob.AspectRatio.PORTRAIT: "Portrait"}


@register.filter
def status_label(status):
    return Status(status).label if status in Status.values else status


@register.filter
def status_tone(status):
    """A CSS modifier: live while in progress, then ok / bad / warn / muted."""
    return TONES.get(status, "live")


@register.filter
def stage_hint(status):
    return STAGE_HINTS.get(status, "")


@register.filter
def orientation(aspect_ratio):
    return ORIENTATIONS.get(aspect_ratio, aspect_ratio)


@register.filter
def age(moment):
    """ "just now", "3 minutes ago", "2 days, 4 hours ago"."""
    if timezone.now() - moment < timedelta(minutes=1):
        return "just now"
    return f"{timesince(moment)} ago"


@register.filter
def elapsed(job):
    """How long the job took, or has taken so far."""
    return seconds_text(elapsed_seconds(job))


@register.filter
def elapsed_seconds(job):
    """The same in whole seconds, for the page's script to count on from."""
    end = job.completed_at or timezone.now()
    return max(0, round((end - job.created_at).total_seconds()))


@register.filter
def seconds_text(seconds):
    """4.0 -> "4 s", 130 -> "2 min 10 s", 7260 -> "2 h 1 min"."""
    if seconds is None or seconds == "":
        return ""
    seconds = max(0, round(float(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


@register.filter
def minutes_text(delta):
    """A timedelta as "15 minutes"."""
    minutes = max(1, round(delta.total_seconds() / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"
