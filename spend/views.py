import csv
import re
from datetime import date, timedelta

from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from jobs.models import Usage
from spend import budget, chart, figures

MONTHS_SHOWN = 24


@require_GET
def page(request):
    first = _month(request)
    month = figures.month(request.user, first)
    context = {
        "month": month,
        "months": _months(),
        "chart": chart.daily([(day.day, f.known_cost, f.jobs) for day, f in month.days]),
        "budget": budget.this_month() if first == budget.month_of(timezone.now())[0] else None,
    }
    return render(request, "spend/page.html", context)


@require_GET
def export(request):
    """The month as CSV: one line per day, person, model and length, as the reader may see them."""
    first = _month(request)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="soraweb-spend-{first:%Y-%m}.csv"'
    writer = csv.writer(response)
    writer.writerow(
        [
            "day", "person", "model", "seconds", "jobs", "seconds delivered", "known cost",
            "jobs with unknown cost", "charged failures", "charged failures cost",
        ]
    )  # fmt: skip
    for day, person, model, seconds, f in figures.lines(request.user, first):
        writer.writerow(
            [
                day.isoformat(), _cell(person or "others (team)"), _cell(model), seconds or "", f.jobs,
                f"{f.seconds:g}", f"{f.known_cost:.4f}", f.unknown_cost, f.charged_failures,
                f"{f.charged_failures_cost:.4f}",
            ]
        )  # fmt: skip
    return response


def _cell(text):
    # A spreadsheet runs a cell starting with one of these as a formula.
    return f"'{text}" if text[:1] in ("=", "+", "-", "@") else text


def _month(request):
    """The first day of ?month=YYYY-MM, this month when absent."""
    value = request.GET.get("month", "")
    if not value:
        return budget.month_of(timezone.now())[0]
    match = re.fullmatch(r"(\d{4})-(\d{2})", value)
    if not match or not 1 <= int(match[2]) <= 12:
        raise Http404("No such month.")
    return date(int(match[1]), int(match[2]), 1)


def _months():
    """[(YYYY-MM, label)] from this month back to the first with a submission (two years at most)."""
    current = budget.month_of(timezone.now())[0]
    oldest = (
        Usage.objects.filter(day__isnull=False).order_by("day").values_list("day", flat=True).first()
        or current
    )
    months = []
    first = current
    while first >= oldest.replace(day=1) and len(months) < MONTHS_SHOWN:
        months.append((f"{first:%Y-%m}", f"{first:%B %Y}"))
        first = (first.replace(day=1) - timedelta(days=1)).replace(day=1)
    return months
