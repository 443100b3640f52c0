"""The bulk ZIP of 50 videos of 20 MB: memory, time to first byte, and throughput against
reading the same files straight from disk.

    python -m bench.zip_export      # this row alone (no database, no Redis)
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VIDEOS = 50
VIDEO_MB = 20
LIMIT_MB = 30
FIRST_BYTE_LIMIT_S = 0.3
THROUGHPUT_SHARE = 0.8


def zip_export(results):
    with tempfile.TemporaryDirectory(prefix="soraweb-bench-zip-") as folder:
        _write_videos(Path(folder) / "media" / "videos")
        report = _measure_in_child(folder)
    total_mb = report["zip_bytes"] / 2**20
    growth, first_byte = report["rss_growth_mb"], report["first_byte_s"]
    share = report["zip_mb_s"] / report["disk_mb_s"]
    results.add(
        "zip", "memory", f"ZIP of {VIDEOS} videos x {VIDEO_MB} MB: peak memory growth",
        f"+{growth:.1f} MB peak RSS while sending {total_mb:.0f} MB", f"<= {LIMIT_MB} MB",
        growth <= LIMIT_MB, **report,
    )  # fmt: skip
    results.add(
        "zip", "first_byte", "ZIP: time to first byte",
        f"{first_byte * 1000:.0f} ms", f"<= {FIRST_BYTE_LIMIT_S * 1000:.0f} ms",
        first_byte <= FIRST_BYTE_LIMIT_S,
    )  # fmt: skip
    results.add(
        "zip", "throughput", "ZIP: throughput against reading the files from disk",
        f"{share:.0%} ({report['zip_mb_s']:.0f} MB/s zipped, {report['disk_mb_s']:.0f} MB/s read)",
        f">= {THROUGHPUT_SHARE:.0%}", share >= THROUGHPUT_SHARE,
    )  # fmt: skip
    cached = report["cache_zip_mb_s"] / report["cache_read_mb_s"]
    results.add(
        "zip", "throughput_cached", "ZIP: throughput against reading the files from a warm page cache",
        f"{cached:.0%} ({report['cache_zip_mb_s']:.0f} MB/s zipped, "
        f"{report['cache_read_mb_s']:.0f} MB/s read)",
        "report", None,
    )  # fmt: skip


def _write_videos(folder):
    """VIDEOS files of VIDEO_MB of random bytes (incompressible, as MP4s are) behind an MP4 header."""
    folder.mkdir(parents=True)
    block = os.urandom(2**20)
    for n in range(1, VIDEOS + 1):
        with open(folder / f"bench-{n}.mp4", "wb") as out:
            for _ in range(VIDEO_MB):
                out.write(block)


def _measure_in_child(folder):
    """A fresh process, as a web worker is: its RSS then shows what the ZIP itself costs."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "soraweb.settings",
        "DATA_DIR": folder,
        "LOG_LEVEL": "WARNING",
    }
    env.pop("MEDIA_ROOT", None)
    env.pop("S3_BUCKET", None)
    child = subprocess.run(
        [sys.executable, "-m", "bench.zip_child", str(VIDEOS)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if child.returncode:
        raise RuntimeError(f"the zip child failed:\n{child.stderr[-3000:]}")
    return json.loads(child.stdout.splitlines()[-1])


def main():
    from bench import measure

    results = measure.Results({"machine": measure.machine()})
    zip_export(results)
    print(f"\n{results.table()}")


if __name__ == "__main__":
    main()
