from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from jobs import media
from jobs.models import VideoJob


@login_required
def gallery(request):
    jobs = VideoJob.objects.select_related("owner")[:50]
    return render(request, "jobs/gallery.html", {"jobs": jobs})


@require_GET
def reference(request, token):
    """The signed, expiring link the gateway fetches a reference image from (no sign-in)."""
    pk = media.job_pk_from_reference_token(token)
    job = get_object_or_404(VideoJob, pk=pk) if pk else None
    if job is None or not job.reference_image:
        raise Http404
    response = FileResponse(job.reference_image.open("rb"), content_type="image/png")
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, max-age=3600"
    return response
