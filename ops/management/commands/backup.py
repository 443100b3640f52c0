from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from ops.backup import BackupError, backup


class Command(BaseCommand):
    help = "Back up the embedded default (SQLite, media, secret key) into one tar.gz while it runs."

    def add_arguments(self, parser):
        parser.add_argument("dest", type=Path, help="a folder, or the archive's file name")

    def handle(self, *args, dest, **options):
        try:
            path, manifest = backup(dest)
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        jobs = sum(manifest["jobs"].values())
        key = "included" if manifest["secret_key"] else "not in DATA_DIR (set by SECRET_KEY)"
        size = manifest["media_bytes"] / 2**20
        files = manifest["media_files"]
        self.stdout.write(f"{path}: {jobs} jobs, {files} media files ({size:.1f} MB), key {key}")
        if missing := manifest["media_missing"]:
            self.stdout.write(f"Deleted while copying (not in the archive): {len(missing)} files")
