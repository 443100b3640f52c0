"""The audit record: who submitted, retried, cancelled or deleted which job, and who changed
a limit; staff read it with filters; it outlives the jobs it names."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from audit import views
from audit.models import AuditEvent
from jobs import submission
from jobs.models import VideoJob
from tests.factories import make_job
from tests.helpers import user_limits_post

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media", "submitted")]
Status = VideoJob.Status
FORM = {
    "prompt": "a kite over the dunes",
    "model": "openAiSora2Plus",
    "aspect_ratio": "16:9",
    "duration": "4",
}


@pytest.fixture(autouse=True)
def no_limits(settings):
    settings.SORAWEB_LIMIT_ACTIVE_JOBS = settings.SORAWEB_LIMIT_JOBS_PER_DAY = 0
    settings.SORAWEB_LIMIT_MONTHLY_SPEND = Decimal(0)


def actions():
    return list(AuditEvent.objects.order_by("id").values_list("actor_name", "action", "job_id"))


def test_a_submission_is_recorded_with_its_job(client, alice):
    client.force_login(alice)

    client.post(reverse("jobs:create"), FORM)

    job = VideoJob.objects.get()
    event = AuditEvent.objects.get()
    assert (event.actor, event.action, event.job_id, event.job_label) == (
        alice, "submitted", job.pk, "a kite over the dunes",
    )  # fmt: skip


def test_a_retry_is_recorded_with_the_job_it_repeats(client, alice, bob):
    failed = make_job(alice, status=Status.FAILED)
    client.force_login(bob)

    client.post(reverse("jobs:retry", args=[failed.pk]))

    again = VideoJob.objects.get(retry_of=failed)
    assert actions() == [("bob", "retried", again.pk)]
    assert AuditEvent.objects.get().details == {"retry_of": failed.pk}


def test_a_cancel_is_recorded_only_when_it_cancels(client, alice):
    job = make_job(alice, status=Status.PROCESSING)
    client.force_login(alice)

    client.post(reverse("jobs:cancel", args=[job.pk]))
    client.post(reverse("jobs:cancel", args=[job.pk]))

    assert actions() == [("alice", "cancelled", job.pk)]


def test_a_deletion_is_recorded_and_the_record_outlives_the_job(client, alice):
    job = make_job(alice, status=Status.SUCCEEDED, prompt="A red fox at dawn in deep snow")
    client.force_login(alice)

    client.post(reverse("jobs:delete", args=[job.pk]))

    assert not VideoJob.objects.exists()
    event = AuditEvent.objects.get()
    assert (event.action, event.job_id, event.job_label) == (
        "deleted",
        job.pk,
        "A red fox at dawn in deep snow",
    )


def test_the_admins_cancel_and_delete_are_recorded(client, alice, staff):
    running, done = make_job(alice, status=Status.QUEUED), make_job(alice, status=Status.FAILED)
    client.force_login(staff)
    changelist = reverse("admin:jobs_videojob_changelist")

    client.post(changelist, {"action": "cancel", "_selected_action": [running.pk, done.pk]})
    client.post(reverse("admin:jobs_videojob_delete", args=[done.pk]), {"post": "yes"})

    assert actions() == [("staff", "cancelled", running.pk), ("staff", "deleted", done.pk)]


def test_a_person_deleted_later_is_still_named(client, django_user_model, alice):
    carol = django_user_model.objects.create_user("carol", password="carol-password-1")
    submission.submit(carol, lambda: make_job(carol))
    carol.jobs.all().delete()
    carol.delete()

    event = AuditEvent.objects.get()
    assert (event.actor, event.actor_name) == (None, "carol")


def test_an_admin_changing_a_limit_is_recorded(client, alice, staff):
    client.force_login(staff)
    url = reverse("admin:auth_user_change", args=[alice.pk])
    data = user_limits_post(client, url, alice, active_jobs="9", jobs_per_day="", monthly_spend="")

    assert client.post(url, data).status_code == 302

    event = AuditEvent.objects.get()
    assert (event.actor_name, event.action, event.target) == ("staff", "limit_changed", "limits of alice")
    assert event.details == {"active_jobs": {"before": "server default", "after": "9"}}


# --- The staff page ---------------------------------------------------------------------


def test_only_staff_read_the_audit_record(client, alice):
    client.force_login(alice)
    assert client.get(reverse("audit:events")).status_code == 403
    client.logout()
    assert "/accounts/login/" in client.get(reverse("audit:events"))["Location"]


def test_staff_filter_by_action_person_job_and_dates(client, alice, bob, staff):
    first = submission.submit(alice, lambda: make_job(alice))
    second = submission.submit(bob, lambda: make_job(bob))
    AuditEvent.objects.create(actor=bob, actor_name="bob", action="cancelled", job_id=second.pk)
    old = AuditEvent.objects.create(actor_name="alice", action="deleted", job_id=99)
    AuditEvent.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=40))
    client.force_login(staff)

    def shown(**filters):
        events = client.get(reverse("audit:events"), filters).context["events"]
        return [(event.actor_name, event.action, event.job_id) for event in events]

    assert shown(action="submitted") == [("bob", "submitted", second.pk), ("alice", "submitted", first.pk)]
    assert shown(person="bob") == [("bob", "cancelled", second.pk), ("bob", "submitted", second.pk)]
    assert shown(job=second.pk) == [("bob", "cancelled", second.pk), ("bob", "submitted", second.pk)]
    last_month = (timezone.localdate() - timedelta(days=40)).isoformat()
    assert shown(since=last_month, until=last_month) == [("alice", "deleted", 99)]


def test_the_record_pages_by_keyset_newest_first(client, staff, monkeypatch):
    monkeypatch.setattr(views, "PAGE_SIZE", 2)
    moment = timezone.now()
    for n in range(5):
        # Two share a moment: the id settles their order.
        AuditEvent.objects.create(
            actor_name=f"p{n}", action="submitted", created_at=moment - timedelta(minutes=n // 2)
        )
    client.force_login(staff)

    names, url = [], reverse("audit:events") + "?action=submitted"
    while url:
        response = client.get(url if url.startswith("/") else reverse("audit:events") + url)
        names += [event.actor_name for event in response.context["events"]]
        url = response.context["older_url"]

    assert names == ["p1", "p0", "p3", "p2", "p4"]


def test_the_admin_shows_the_record_read_only(client, staff, alice):
    submission.submit(alice, lambda: make_job(alice))
    client.force_login(staff)
    event = AuditEvent.objects.get()

    assert client.get(reverse("admin:audit_auditevent_changelist")).status_code == 200
    assert client.get(reverse("admin:audit_auditevent_change", args=[event.pk])).status_code == 200
    assert (
        client.post(reverse("admin:audit_auditevent_delete", args=[event.pk]), {"post": "yes"}).status_code
        == 403
    )
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_a_bulk_delete_and_a_group_of_deletions_are_each_recorded(client, alice):
    first, second = make_job(alice, status=Status.FAILED), make_job(alice, status=Status.SUCCEEDED)
    client.force_login(alice)

    client.post(reverse("handover:bulk"), {"action": "delete", "ids": [first.pk, second.pk]})

    assert sorted(actions()) == sorted([("alice", "deleted", first.pk), ("alice", "deleted", second.pk)])


def test_attaching_an_id_on_the_desk_is_recorded(client, staff, alice):
    unknown = make_job(alice, status=Status.UNKNOWN)
    client.force_login(staff)

    client.post(reverse("jobs:desk_attach", args=[unknown.pk]), {"upstream_id": "sora-2:task_found"})

    assert actions() == [("staff", "attached_id", unknown.pk)]
    assert AuditEvent.objects.get().details == {"upstream_id": "sora-2:task_found"}


def test_a_cancel_through_the_api_is_recorded(client, alice):
    from api.models import ApiToken

    running = make_job(alice, status=Status.QUEUED)
    _, token = ApiToken.issue(alice, "script")

    answer = client.post(f"/api/v1/jobs/{running.pk}/cancel", HTTP_AUTHORIZATION=f"Bearer {token}")

    assert answer.status_code == 200
    assert actions() == [("alice", "cancelled", running.pk)]
