"""Paid videos recovered, against real workers, beat and the simulator over HTTP.

A create answer that arrives after its lease ran out is kept; an `unknown` job whose
id staff attach is tracked and downloaded as any other.
"""

import pytest
from django.urls import reverse
from django.utils import timezone

from jobs.models import VideoJob
from jobs.tasks import submit_job
from tests.helpers import wait_for

pytestmark = [pytest.mark.integration]
S = VideoJob.Status


@pytest.fixture
def config(sim):
    saved = sim.config()
    yield sim
    sim.configure(**saved)


def start(processes, **env):
    processes.env.update({key: str(value) for key, value in env.items()})
    processes.worker(concurrency=2)
    processes.beat()


def status_of(job):
    return VideoJob.objects.get(pk=job.pk).status


def wait(processes, predicate, message, timeout=60):
    try:
        return wait_for(predicate, timeout=timeout, interval=0.1, message=message)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{processes.logs()}") from None


def creates(sim, job):
    return [entry for entry in sim.create_calls() if entry["prompt"] == job.prompt]


def test_a_create_answer_after_the_lease_ran_out_ends_succeeded_with_one_create(processes, config, alice):
    # The read timeout outlasts the gateway's hang, so the answer does come, only late.
    config.configure(hang_seconds=8)
    config.set_faults(create=["timeout"])
    start(processes, SORA_CONNECT_TIMEOUT=2, SORA_READ_TIMEOUT=30)
    job = VideoJob.objects.create(owner=alice, prompt="a late answer (recovery 1)", duration=4)
    submit_job.delay(job.pk)
    wait(
        processes, lambda: status_of(job) == S.SUBMITTING and creates(config, job), "the create call to hang"
    )

    # The lease (models.call_lease, about a minute here) runs out while the call still hangs:
    # skip to its end, as a paused or very slow worker would; the sweep gives up on the call.
    VideoJob.objects.filter(pk=job.pk, status=S.SUBMITTING).update(next_check_at=timezone.now())
    wait(processes, lambda: status_of(job) == S.UNKNOWN, "the sweep to move the job to unknown")
    assert creates(config, job)[0]["status"] is None, "the create call had already been answered"

    wait(processes, lambda: status_of(job) == S.SUCCEEDED, "the late answer to be tracked to the end", 90)

    job.refresh_from_db()
    assert len(creates(config, job)) == 1
    assert job.upstream_id == creates(config, job)[0]["task_id"]
    assert job.video and "late answer" in job.history[-1]["what"]


def test_an_unknown_job_recovered_by_attaching_its_id_ends_succeeded(processes, config, alice, staff, client):
    # The gateway takes the job, then hangs past the read timeout: the outcome is unknown.
    config.configure(hang_seconds=6)
    config.set_faults(create=["timeout"])
    start(processes, SORA_CONNECT_TIMEOUT=2, SORA_READ_TIMEOUT=2)
    job = VideoJob.objects.create(owner=alice, prompt="an uncertain create (recovery 2)", duration=4)
    submit_job.delay(job.pk)
    wait(processes, lambda: status_of(job) == S.UNKNOWN, "the job to need attention")

    # Staff find the id in the gateway's dashboard (here: the simulator's request log).
    task_id = creates(config, job)[0]["task_id"]
    client.force_login(staff)
    client.post(reverse("jobs:desk_attach", args=[job.pk]), {"upstream_id": task_id})

    wait(processes, lambda: status_of(job) == S.SUCCEEDED, "the attached job to be downloaded", 90)
    job.refresh_from_db()
    assert len(creates(config, job)) == 1
    assert job.upstream_id == task_id and job.video
    assert [entry["who"] for entry in job.history] == ["staff"]
