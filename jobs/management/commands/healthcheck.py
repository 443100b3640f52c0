"""`manage.py healthcheck [database broker worker sweep]`: /healthz for container healthchecks."""

from django.core.management.base import BaseCommand, CommandError

from jobs.health import run_checks


class Command(BaseCommand):
    help = "Exit non-zero unless the named checks (default: all) pass."

    def add_arguments(self, parser):
        parser.add_argument("names", nargs="*")

    def handle(self, names, **options):
        results = run_checks(names or None)
        for name, result in results.items():
            self.stdout.write(f"{name}: {'ok' if result['ok'] else 'FAILING'} ({result['detail']})")
        if not all(result["ok"] for result in results.values()):
            raise CommandError("unhealthy")
