import calendar
import re
from datetime import UTC, datetime, time, timedelta
from urllib.parse import urlencode

from django import forms
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from audit.models import AuditEvent

PAGE_SIZE = 50


class Filters(forms.Form):
    action = forms.ChoiceField(choices=[("", "Any action"), *AuditEvent.Action.choices], required=False)
    person = forms.CharField(required=False, max_length=150, help_text="A username, exactly.")
    job = forms.IntegerField(label="Job id", required=False, min_value=1)
    since = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def events(self):
        events = AuditEvent.objects.all()
        data = self.cleaned_data
        if data["action"]:
            events = events.filter(action=data["action"])
        if data["person"]:
            events = events.filter(actor_name=data["person"])
        if data["job"]:
            events = events.filter(job_id=data["job"])
        zone = timezone.get_current_timezone()
        if data["since"]:
            events = events.filter(created_at__gte=datetime.combine(data["since"], time.min, tzinfo=zone))
        if data["until"]:
            following = data["until"] + timedelta(days=1)
            events = events.filter(created_at__lt=datetime.combine(following, time.min, tzinfo=zone))
        return events


@require_GET
def events(request):
    """The audit record, newest first, staff only."""
    if not request.user.is_staff:
        raise PermissionDenied("Only staff can read the audit record.")
    form = Filters(request.GET)
    events = form.events() if form.is_valid() else AuditEvent.objects.none()
    # Keyset pagination on (created_at, id): every page costs the same, however deep.
    if before := _cursor(request.GET.get("before")):
        created_at, pk = before
        events = events.filter(created_at__lte=created_at).filter(Q(created_at__lt=created_at) | Q(pk__lt=pk))
    page = list(events.order_by("-created_at", "-id")[: PAGE_SIZE + 1])
    query = {key: value for key, value in request.GET.items() if key != "before" and value}
    context = {
        "form": form,
        "events": page[:PAGE_SIZE],
        "older_url": "?" + urlencode({**query, "before": _cursor_value(page[PAGE_SIZE - 1])})
        if len(page) > PAGE_SIZE
        else None,
        "newest_url": "?" + urlencode(query) if before else None,
    }
    return render(request, "audit/events.html", context)


def _cursor_value(event):
    micros = calendar.timegm(event.created_at.utctimetuple()) * 10**6 + event.created_at.microsecond
    return f"{micros}_{event.pk}"


def _cursor(value):
    """(created_at, pk) from "<microseconds since the epoch>_<pk>", or None."""
    match = re.fullmatch(r"(\d{1,17})_(\d{1,19})", value or "")
    if not match:
        return None
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(match[1])), int(match[2])
