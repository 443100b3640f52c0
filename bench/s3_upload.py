"""Worker memory while a 500 MB video goes to the bucket: a multipart upload from the staged
file, so it must stay flat whatever the video's size.

    python -m bench.s3_upload       # on its own: starts moto's S3 server on a free port
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VIDEO_MB = 500
LIMIT_MB = 40


def s3_upload(results):
    report = measure()
    growth = report["upload_rss_growth_mb"]
    results.add(
        "s3", "upload_rss", "worker memory uploading a 500 MB video to S3",
        f"+{growth:.1f} MB peak RSS while uploading {report['bytes'] / 2**20:.0f} MB in "
        f"{report['upload_seconds']:.1f} s (moto server, multipart)",
        f"<= {LIMIT_MB} MB", growth <= LIMIT_MB, **report,
    )  # fmt: skip


def measure(megabytes=VIDEO_MB):
    import boto3
    from moto.server import ThreadedMotoServer

    # moto keeps objects in memory: in this process, not the measured child.
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{server.get_host_and_port()[1]}"
    env = {
        **os.environ,
        "S3_BUCKET": "bench-upload",
        "S3_ENDPOINT_URL": endpoint,
        "S3_REGION": "us-east-1",
        "S3_ACCESS_KEY_ID": "bench",
        "S3_SECRET_ACCESS_KEY": "bench-secret",
    }
    client = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="bench", aws_secret_access_key="bench-secret",
    )  # fmt: skip
    client.create_bucket(Bucket="bench-upload")
    try:
        with tempfile.TemporaryDirectory() as data_dir:
            env.setdefault("DATA_DIR", data_dir)
            child = subprocess.run(
                [sys.executable, "-m", "bench.s3_upload_child", str(megabytes), "videos/bench.mp4"],
                cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
            )  # fmt: skip
        if child.returncode:
            raise RuntimeError(f"the upload child failed:\n{child.stderr[-3000:]}")
        report = json.loads(child.stdout.splitlines()[-1])
        stored = client.head_object(Bucket="bench-upload", Key=report["name"])["ContentLength"]
        assert stored == report["bytes"], (stored, report["bytes"])
        return report
    finally:
        server.stop()


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "soraweb.settings")
    print(json.dumps(measure()))
