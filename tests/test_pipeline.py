"""The whole pipeline with nothing faked: real Celery worker and beat processes,
real Redis, the simulator over HTTP. Jobs go from a saved row to a stored MP4."""

import itertools
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.base import ContentFile

from jobs import media
from jobs.models import VideoJob
from jobs.tasks import submit_job
from tests.factories import image_bytes
from tests.helpers import wait_for

pytestmark = [pytest.mark.integration]

FINAL = set(VideoJob.FINAL)


def submit(owner, prompt, **fields):
    job = VideoJob.objects.create(owner=owner, prompt=prompt, **fields)
    submit_job.delay(job.pk)
    return job


def wait_until_final(jobs, timeout=180):
    pks = [job.pk for job in jobs]

    def all_final():
        rows = list(VideoJob.objects.filter(pk__in=pks))
        return rows if all(row.status in FINAL for row in rows) else None

    return wait_for(all_final, timeout=timeout, message="every job to finish")


def test_twenty_mixed_jobs_all_succeed_with_one_create_each(stack, sim, alice):
    combos = itertools.cycle(
        itertools.product(VideoJob.Model.values, VideoJob.AspectRatio.values, VideoJob.Duration.values)
    )
    jobs = [
        submit(alice, f"job {n}: a paper boat on a stream", model=model, aspect_ratio=ratio, duration=seconds)
        for n, (model, ratio, seconds) in zip(range(20), combos, strict=False)
    ]
    started = time.monotonic()

    finished = wait_until_final(jobs)

    assert {job.status for job in finished} == {"succeeded"}, stack.logs()
    for job in finished:
        info = media.probe(Path(settings.MEDIA_ROOT) / job.video.name)
        expected = (1280, 720) if job.aspect_ratio == "16:9" else (720, 1280)
        assert (info["width"], info["height"]) == expected
        assert info["duration"] == pytest.approx(job.duration, abs=0.5)
        assert (Path(settings.MEDIA_ROOT) / job.poster.name).stat().st_size > 0
        assert job.actual_duration == job.duration
        assert job.cost > 0
    creates = Counter(call["prompt"] for call in sim.create_calls())
    assert sorted(creates.values()) == [1] * 20
    assert set(creates) == {job.prompt for job in jobs}
    polls = poll_times(sim)
    assert max(len(times) for times in polls.values()) <= 10
    assert min_gap(polls) >= 0.9  # SORA_POLL_INTERVAL is 1 s here.
    print(
        f"\n20 jobs: {time.monotonic() - started:.1f} s wall, 1 create per job, "
        f"polls per job mean {sum(map(len, polls.values())) / 20:.1f} max {max(map(len, polls.values()))}, "
        f"shortest gap between two polls of a job {min_gap(polls):.2f} s"
    )


def poll_times(sim):
    times = defaultdict(list)
    for call in sim.requests_log():
        if call["method"] == "GET" and "/v1/result/" in call["path"]:
            times[call["task_id"]].append(call["time"])
    return times


def min_gap(polls):
    return min(b - a for times in polls.values() for a, b in itertools.pairwise(sorted(times)))


def test_a_moderation_refusal_ends_failed_with_the_providers_message(stack, sim, alice):
    job = submit(alice, "a crowd scene [sim:moderation]")

    [job] = wait_until_final([job])

    assert job.status == "failed"
    assert job.failure_kind == "moderation"
    assert "safety system" in job.error


def test_a_provider_failure_ends_failed_with_its_message(stack, sim, alice):
    job = submit(alice, "a storm at sea [sim:fail]")

    [job] = wait_until_final([job])

    assert (job.status, job.failure_kind) == ("failed", "provider")
    assert "Internal generation error" in job.error


def test_a_refused_key_ends_failed_saying_the_key_was_refused(processes, sim, alice):
    sim_with_key = type(sim)(api_key="the-right-key", generation_seconds=1).start()
    try:
        processes.env.update(SORA_API_BASE_URL=sim_with_key.url, SORA_API_KEY="a-wrong-key")
        processes.worker(concurrency=1)
        job = submit(alice, "a lighthouse at dusk")

        [job] = wait_until_final([job], timeout=60)
    finally:
        sim_with_key.stop()

    assert (job.status, job.failure_kind) == ("failed", "account")
    assert "refused the API key" in job.error
    assert "a-wrong-key" not in job.error


def test_a_reference_image_is_published_and_fetched_by_the_gateway(processes, sim, alice, live_server):
    processes.env["PUBLIC_BASE_URL"] = live_server.url
    processes.worker(concurrency=2)
    processes.beat()
    job = VideoJob(owner=alice, prompt="the same street, at night", aspect_ratio="16:9", duration=4)
    job.reference_image.save("street.jpg", ContentFile(image_bytes(1280, 720, fmt="JPEG")))
    submit_job.delay(job.pk)

    [job] = wait_until_final([job])

    assert job.status == "succeeded", job.error
    [create] = sim.create_calls()
    [image_url] = create["body"]["input_reference"]
    assert image_url.startswith(live_server.url + "/r/")
