from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from ops.backup import BackupError, restore


class Command(BaseCommand):
    help = "Restore a backup made by `manage.py backup` onto an empty data folder."
    requires_system_checks = []  # Nothing may open the database before restore checks it is empty.

    def add_arguments(self, parser):
        parser.add_argument("archive", type=Path)

    def handle(self, *args, archive, **options):
        if not archive.is_file():
            raise CommandError(f"{archive}: no such file")
        try:
            manifest = restore(archive)
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        jobs = sum(manifest["jobs"].values())
        self.stdout.write(
            f"Restored the backup of {manifest['made_at']}: {jobs} jobs, "
            f"{manifest['media_files']} media files; "
            f"{manifest['released']} jobs in progress are due at once. Run `manage.py migrate` if this "
            "version of soraweb is newer than the backup, then start the server."
        )
