"""Run in a process of its own (as a worker is): store one staged file of N MB in the bucket
the environment names (S3_*), through jobs.media._store, and print as one line of JSON how
far RSS rose. Also the process tests/test_s3.py kills mid-upload.

    python -m bench.s3_upload_child MEGABYTES KEY
"""

import json
import sys
from pathlib import Path

import django

from bench.download_child import MB, PeakRSS


def main(megabytes, key):
    django.setup()
    from django.conf import settings

    from jobs import media

    staging = Path(settings.DATA_DIR) / "staging"
    staging.mkdir(exist_ok=True)
    part = staging / f"upload-{megabytes}mb.mp4"
    with open(part, "wb") as out:
        block = bytes(range(256)) * 4096  # 1 MB that is not all zeros
        for _ in range(megabytes):
            out.write(block)
    # A worker's S3 client is made at its first file: loading botocore's service model is
    # paid once per process, not per upload, so it happens before the measurement.
    from django.core.files.storage import default_storage

    default_storage.exists(key)
    print("staged", flush=True)
    try:
        with PeakRSS() as upload:
            name = media._store(part, key)
    finally:
        part.unlink(missing_ok=True)
    report = {
        "bytes": megabytes * MB,
        "name": name,
        "rss_before_mb": upload.baseline / MB,
        "upload_rss_growth_mb": upload.growth_mb,
        "upload_seconds": upload.seconds,
    }
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
