"""Make the small poster and reference-image copies for videos stored before they existed."""

from django.core.management.base import BaseCommand
from PIL import UnidentifiedImageError

from jobs import media
from jobs.models import VideoJob


class Command(BaseCommand):
    help = "Store the small copies of posters and reference images that pages ask for (missing ones only)."

    def add_arguments(self, parser):
        parser.add_argument("--all", dest="remake", action="store_true", help="remake existing copies")

    def handle(self, remake, **options):
        jobs = VideoJob.objects.exclude(poster="", reference_image="").only("id", "poster", "reference_image")
        made = failed = 0
        for job in jobs.iterator(chunk_size=200):
            try:
                made += media.make_image_sizes(job, only_missing=not remake)
            except (OSError, UnidentifiedImageError) as exc:
                # One missing or broken file must not stop the rest; that job keeps its full-size image.
                failed += 1
                self.stderr.write(f"job {job.pk}: {exc}")
        if options["verbosity"]:
            self.stdout.write(f"Made small copies of {made} image(s); {failed} job(s) could not be read.")
