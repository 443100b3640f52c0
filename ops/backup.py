"""Backup and restore of the embedded default: the SQLite database, the media folder and the
secret key, in one tar.gz with a manifest. PostgreSQL and S3 have their own tools (docs/deploy.md).

The database is copied with SQLite's online backup API: one consistent snapshot taken
while web and workers keep writing. Media files are copied after it, so every file a
row of the snapshot names is there unless it was deleted in between (the manifest
lists what went missing); files newer than the snapshot are harmless extras.
"""

import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
from contextlib import closing
from datetime import UTC
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.db import connection
from django.utils import timezone

from jobs.models import VideoJob

FORMAT = 1
MANIFEST = "manifest.json"
DATABASE = "db.sqlite3"
SECRET_KEY = "secret_key"
MEDIA = "media"


class BackupError(Exception):
    """Backup or restore refused; str() says why and what to do."""


def _sqlite_path() -> Path:
    db = settings.DATABASES["default"]
    if not db["ENGINE"].endswith("sqlite3"):
        raise BackupError(
            "This server uses PostgreSQL: back it up with pg_dump and restore with pg_restore "
            "(docs/deploy.md, 'Backups')."
        )
    return Path(db["NAME"])


def _media_root() -> Path:
    if settings.S3_BUCKET:
        raise BackupError(
            "Media is in the S3 bucket: keep it with bucket versioning or `aws s3 sync` (docs/deploy.md)."
        )
    return Path(settings.MEDIA_ROOT)


def backup(dest: Path, source_db: Path | None = None, media_root: Path | None = None) -> tuple[Path, dict]:
    """Write one archive (into dest if it is a folder); returns its path and manifest.

    The database and media folder are the server's own unless given (tests give others).
    """
    source_db, media_root = source_db or _sqlite_path(), media_root or _media_root()
    dest = Path(dest)
    if dest.is_dir():
        dest = dest / f"soraweb-backup-{timezone.now():%Y%m%d-%H%M%S}.tar.gz"
    if dest.exists():
        raise BackupError(f"{dest} already exists; a backup never overwrites one.")
    with tempfile.TemporaryDirectory(prefix="soraweb-backup-", dir=dest.parent) as folder:
        snapshot = Path(folder) / DATABASE
        taken_at = timezone.now()
        with (
            closing(sqlite3.connect(source_db, timeout=60)) as src,
            src,
            closing(sqlite3.connect(snapshot)) as out,
            out,
        ):
            src.backup(out)  # In one step: a snapshot of one moment.
        with closing(sqlite3.connect(snapshot)) as db, db:
            jobs = db.execute("SELECT status, COUNT(*) FROM jobs_videojob GROUP BY status").fetchall()
        manifest = {
            "format": FORMAT,
            "made_at": taken_at.isoformat(),
            "database": "sqlite",
            "jobs": dict(jobs),
            "secret_key": False,
            "media_files": 0,
            "media_bytes": 0,
            "media_missing": [],
        }
        partial = dest.with_name(dest.name + ".partial")
        with tarfile.open(partial, "w:gz") as tar:
            tar.add(snapshot, DATABASE)
            key = source_db.parent / SECRET_KEY
            if key.exists():
                tar.add(key, SECRET_KEY)
                manifest["secret_key"] = True
            for path in sorted(media_root.rglob("*")) if media_root.exists() else ():
                if not path.is_file():
                    continue
                name = str(PurePosixPath(MEDIA, path.relative_to(media_root).as_posix()))
                try:
                    tar.add(path, name)
                except FileNotFoundError:  # Deleted while we were copying.
                    manifest["media_missing"].append(name)
                    continue
                manifest["media_files"] += 1
                manifest["media_bytes"] += path.stat().st_size if path.exists() else 0
            data = json.dumps(manifest, indent=2).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mtime = len(data), int(taken_at.timestamp())
            with tempfile.TemporaryFile() as handle:
                handle.write(data)
                handle.seek(0)
                tar.addfile(info, handle)
        os.replace(partial, dest)
    return dest, manifest


def read_manifest(archive: Path) -> dict:
    with tarfile.open(archive, "r:gz") as tar:
        try:
            member = tar.getmember(MANIFEST)
        except KeyError:
            raise BackupError(f"{archive} has no {MANIFEST}: it is not a soraweb backup.") from None
        manifest = json.load(tar.extractfile(member))
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{archive} is a backup of format {manifest.get('format')}, not {FORMAT}.")
    return manifest


def _not_empty(target_db: Path, media_root: Path) -> list[str]:
    found = []
    for path in (target_db, Path(f"{target_db}-wal")):
        if path.exists() and path.stat().st_size:
            found.append(str(path))
    if media_root.exists() and any(p.is_file() for p in media_root.rglob("*")):
        found.append(f"files under {media_root}")
    return found


def _destination(name: str, target_db: Path, media_root: Path) -> Path | None:
    """Where a member of the archive goes, or None for what restore does not write."""
    parts = PurePosixPath(name).parts
    if not parts or PurePosixPath(name).is_absolute() or ".." in parts:
        raise BackupError(f"The archive names {name!r}, outside its own folders: refused.")
    if name == DATABASE:
        return target_db
    if name == SECRET_KEY:
        return target_db.parent / SECRET_KEY
    if parts[0] == MEDIA and len(parts) > 1:
        return media_root.joinpath(*parts[1:])
    return None


def restore(archive: Path, target_db: Path | None = None, media_root: Path | None = None) -> dict:
    """Put a backup back on an empty data folder; returns its manifest."""
    archive = Path(archive)
    target_db, media_root = target_db or _sqlite_path(), media_root or _media_root()
    manifest = read_manifest(archive)
    if found := _not_empty(target_db, media_root):
        raise BackupError(
            "Restore only writes onto an empty data folder, and this one holds: "
            + ", ".join(found)
            + ". Point DATA_DIR at a new folder (or move these away) and run restore again."
        )
    if str(target_db) == str(connection.settings_dict["NAME"]):
        connection.close()  # Nothing of ours keeps the file open while it is written.
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            target = _destination(member.name, target_db, media_root)
            if target is None or not member.isfile():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(member) as source, open(target, "wb") as out:
                shutil.copyfileobj(source, out)
            if member.name == SECRET_KEY:
                target.chmod(0o600)
    for stale in (Path(f"{target_db}-wal"), Path(f"{target_db}-shm")):
        stale.unlink(missing_ok=True)
    with closing(sqlite3.connect(target_db)) as db, db:
        (check,) = db.execute("PRAGMA integrity_check").fetchone()
        if check != "ok":
            raise BackupError(f"The restored database fails SQLite's integrity check: {check}")
        # The processes that held leases in the backup are gone: every job in flight is due now.
        # Plain SQL on the file: the ORM's connection may belong to another database (tests).
        active = list(VideoJob.ACTIVE)
        now = timezone.now().astimezone(UTC).replace(tzinfo=None).isoformat(" ")
        released = db.execute(
            f"UPDATE jobs_videojob SET next_check_at = ?, lease_token = '' "
            f"WHERE status IN ({', '.join('?' * len(active))})",
            [now, *active],
        ).rowcount
    manifest["released"] = released
    return manifest
