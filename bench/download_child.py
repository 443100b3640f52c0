"""Run by bench.download in a process of its own: stream one video with jobs.media and print,
as one line of JSON, how much memory that took.

jobs.media.fetch_video is the download (`_download`: stream to a staging file) followed by
the verify step (`probe`, then a poster, both ffmpeg subprocesses). A 500 MB file of an MP4
header and padding streams like a real video but cannot be probed, so the two parts are
called and measured one after the other instead of through fetch_video.
"""

import json
import re
import sys
import time
from pathlib import Path

import django
import psutil

MB = 2**20


class PeakRSS:
    """How far this process's RSS rises above its level at the start of the with-block.

    The peak is the kernel's own high-water mark (VmHWM), reset on entry, so a spike between
    two moments counts as fully as a lasting rise: nothing is sampled.
    """

    def __enter__(self):
        Path("/proc/self/clear_refs").write_text("5")  # "5" resets VmHWM to the current RSS
        self.baseline = psutil.Process().memory_info().rss
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.started
        status = Path("/proc/self/status").read_text()
        self.peak = int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)[1]) * 1024

    @property
    def growth_mb(self):
        return (self.peak - self.baseline) / MB


def main(url):
    django.setup()
    from django.conf import settings

    from jobs import media

    staging = Path(settings.DATA_DIR) / "staging"
    staging.mkdir(exist_ok=True)
    part = staging / "bench-500mb.mp4"
    try:
        with PeakRSS() as download:
            media._download(url, part)
        size = part.stat().st_size
        with PeakRSS() as verify:
            info = media.probe(part)  # ffmpeg runs in a child: its memory is not the worker's
    finally:
        part.unlink(missing_ok=True)
    report = {
        "bytes": size,
        "rss_before_mb": download.baseline / MB,
        "download_rss_growth_mb": download.growth_mb,
        "download_seconds": download.seconds,
        "verify_rss_growth_mb": verify.growth_mb,
        "verify_probe_found_duration": bool(info.get("duration")),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1])
