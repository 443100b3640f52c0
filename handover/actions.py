"""Bulk retry and delete: which of the chosen jobs a person may act on, and why not the rest.

Every id goes through VideoJob.objects.visible_to(user) first: one the person cannot see is
reported exactly like one that does not exist, so a refusal never confirms another's job.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from jobs import actions, submission
from jobs.models import VideoJob

MAX_IDS = 1000
# Larger numbers cannot be a job's and would overflow the database's integer.
ID = re.compile(r"\d{1,18}")


def selected_ids(values: Iterable[str]) -> list[int]:
    """The distinct job numbers among the form's `ids`, in order; anything else is ignored."""
    ids = dict.fromkeys(int(value) for value in values if ID.fullmatch(value.strip()))
    return list(ids)[:MAX_IDS]


@dataclass
class Outcome:
    done: list[int] = field(default_factory=list)
    # {reason: [job numbers]}
    refused: dict[str, list[int]] = field(default_factory=dict)

    def refuse(self, reason: str, pk: int) -> None:
        self.refused.setdefault(reason, []).append(pk)


NOT_FOUND = "not found"
IN_PROGRESS = "still in progress"
READY = "ready: retrying makes a new, billed video; use its own Retry button for that"
NOT_YOURS = "not yours: only its owner or an admin can delete it"


def visible(user: Any, ids: list[int], outcome: Outcome) -> list[VideoJob]:
    jobs = {job.pk: job for job in VideoJob.objects.visible_to(user).filter(pk__in=ids)}
    for pk in ids:
        if pk not in jobs:
            outcome.refuse(NOT_FOUND, pk)
    return [jobs[pk] for pk in ids if pk in jobs]


def retry(user: Any, ids: list[int]) -> Outcome:
    """Repeat the failed, cancelled or unknown jobs among ids as new jobs of user's, in one group or none.

    Ready videos are left alone: a bulk "retry the failed ones" must not quietly pay for
    new takes of the good ones.

    Raises submission.LimitReached when the group does not fit user's limits (nothing is made),
    OSError when a reference image is missing from storage (likewise).
    """
    outcome = Outcome()
    finished = []
    for job in visible(user, ids, outcome):
        if job.status == VideoJob.Status.SUCCEEDED:
            outcome.refuse(READY, job.pk)
        elif job.is_final:
            finished.append(job)
        else:
            outcome.refuse(IN_PROGRESS, job.pk)
    if finished:
        made = submission.submit_many(user, [lambda job=job: job.retry_as_new(user) for job in finished])
        outcome.done = [job.pk for job in made]
    return outcome


def delete(user: Any, ids: list[int]) -> Outcome:
    """Delete, with their files, the finished jobs among ids that user may manage."""
    outcome = Outcome()
    for job in visible(user, ids, outcome):
        if not job.may_be_managed_by(user):
            outcome.refuse(NOT_YOURS, job.pk)
        elif not job.is_final:
            outcome.refuse(IN_PROGRESS, job.pk)
        else:
            actions.delete(job, user)
            outcome.done.append(job.pk)
    return outcome
