"""Free space where videos land: the full-disk rules share one measure."""

import errno
import shutil
from pathlib import Path

from django.conf import settings

from jobs import upstream


class StorageFull(upstream.Transient):
    """The disk refused a write: the video waits (its link lasts a day), it does not fail."""


def is_full(exc: BaseException | None) -> bool:
    """Whether exc, or what caused it, is the disk saying it has no room."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def folders() -> list[Path]:
    """Where downloads are staged (DATA_DIR) and, unless media lives in a bucket, stored."""
    places = [Path(settings.DATA_DIR)]
    if not settings.S3_BUCKET:
        places.append(Path(settings.MEDIA_ROOT))
    return places


def free_mb() -> dict[str, int]:
    """{folder: free MB} for each folder that exists (a missing one is not measured)."""
    free = {}
    for place in folders():
        probe = place
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        free[str(place)] = shutil.disk_usage(probe).free // 2**20
    return free


def shortage() -> str | None:
    """A sentence when some folder has less free space than SORAWEB_MIN_FREE_DISK_MB, else None."""
    floor = settings.SORAWEB_MIN_FREE_DISK_MB
    low = {place: mb for place, mb in free_mb().items() if mb < floor}
    if not low:
        return None
    where = ", ".join(f"{place} has {mb} MB free" for place, mb in low.items())
    return f"Storage is nearly full: {where} (at least {floor} MB are kept free)."
