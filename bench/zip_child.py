"""Run by bench.zip_export in a process of its own: send the bulk ZIP of the videos under
DATA_DIR/media/videos through the same code and response class as the view, and print, as
one line of JSON, its memory, first byte and throughput beside plain reads of the same files.

Rounds alternate (read, zip, read, zip, ...) so other work on the shared machine hits both
alike; the median of each is reported, and the highest memory growth of any ZIP round.
Each is measured twice: from disk (the files' cached pages dropped before every read and
every ZIP, as the target says) and from a warm page cache, where a read costs a memory copy
and the ZIP's CRC32 becomes a visible share of the work.
"""

import json
import os
import statistics
import sys
import time

import django

from bench.download_child import MB, PeakRSS

ROUNDS = 3


def main(count):
    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.http import StreamingHttpResponse
    from django.utils import timezone

    from handover import zips
    from jobs.models import VideoJob

    # Rows as the view loads them, never saved: the figure is about the files, not the query.
    owner = get_user_model()(username="bench")
    jobs = [
        VideoJob(
            pk=n, owner=owner, prompt=f"Bench video number {n}, a long prompt about a paper boat",
            video=f"videos/bench-{n}.mp4", status=VideoJob.Status.SUCCEEDED, created_at=timezone.now(),
        )
        for n in range(1, count + 1)
    ]  # fmt: skip
    paths = [settings.MEDIA_ROOT / job.video.name for job in jobs]

    def read_files():
        total, started = 0, time.perf_counter()
        for path in paths:
            with open(path, "rb") as handle:
                while chunk := handle.read(zips.CHUNK):
                    total += len(chunk)
        return total, time.perf_counter() - started

    def send_zip():
        started = time.perf_counter()
        stream = zips.archive(jobs)
        response = StreamingHttpResponse(stream, content_type="application/zip")
        response["Content-Length"] = len(stream)
        pieces = iter(response)
        total = len(next(pieces))
        first_byte = time.perf_counter() - started
        for piece in pieces:
            total += len(piece)
        response.close()
        return total, first_byte, time.perf_counter() - started

    def from_disk():
        # Clean pages only: the parent wrote the files, so they are flushed first.
        for path in paths:
            fd = os.open(path, os.O_RDONLY)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)

    def rounds(cold):
        reads, sent, growths = [], [], []
        for _ in range(ROUNDS):
            if cold:
                from_disk()
            reads.append(read_files())
            if cold:
                from_disk()
            with PeakRSS() as peak:
                sent.append(send_zip())
            growths.append(peak.growth_mb)
        read_s = statistics.median(seconds for _, seconds in reads)
        zip_s = statistics.median(seconds for *_, seconds in sent)
        return reads[0][0] / MB / read_s, reads[0][0] / MB / zip_s, sent, growths

    os.sync()
    disk_mb_s, zip_mb_s, zips_sent, growths = rounds(cold=True)
    read_files()  # The warm rounds then read from the same page cache.
    cache_mb_s, cache_zip_mb_s, warm_sent, warm_growths = rounds(cold=False)
    zips_sent += warm_sent
    growths += warm_growths
    disk_bytes = sum(path.stat().st_size for path in paths)
    zip_bytes = zips_sent[0][0]
    print(
        json.dumps(
            {
                "videos": count,
                "disk_bytes": disk_bytes,
                "zip_bytes": zip_bytes,
                "rss_growth_mb": max(growths),
                "first_byte_s": statistics.median(first for _, first, _ in zips_sent),
                "disk_mb_s": disk_mb_s,
                "zip_mb_s": zip_mb_s,
                "cache_read_mb_s": cache_mb_s,
                "cache_zip_mb_s": cache_zip_mb_s,
                "rounds": ROUNDS,
            }
        )
    )


if __name__ == "__main__":
    main(int(sys.argv[1]))
