import calendar
import logging
import random
import re
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import IntegrityError, connection, models, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.db.models.expressions import RawSQL
from django.utils import timezone

from jobs import params

if TYPE_CHECKING:
    from jobs.upstream import CreateResult, TaskResult, UpstreamError

log = logging.getLogger(__name__)

# A fresh row's own submit message normally arrives within this; after it the
# sweep assumes the message was lost and sends another.
SUBMIT_GRACE = timedelta(seconds=30)
RESULT_URL_LIFETIME = timedelta(hours=24)
# A gateway job id as people paste it: printable ASCII without spaces, as long as the column.
UPSTREAM_ID_SHAPE = re.compile(r"[!-~]{1,200}")
HISTORY_LENGTH = 50

MODERATION_WORDS = (
    "moderat", "policy", "safety", "violat", "prohibit", "nsfw", "inappropriate",
    "real person", "public figure", "guardrail", "not allowed",
)  # fmt: skip


# A task that leased a row has this long before the sweep may hand it out again:
# twice as long as the call it makes can take (a slow DNS lookup and the row's own
# writes fit in the margin), so a live task is never doubled; and it scales with
# the timeouts, so a row whose task died comes back soon after.
def call_lease() -> timedelta:
    return timedelta(seconds=2 * (settings.SORA_CONNECT_TIMEOUT + settings.SORA_READ_TIMEOUT) + 5)


def download_lease() -> timedelta:
    return timedelta(seconds=settings.SORA_DOWNLOAD_TIMEOUT + 120)


def jittered(seconds: float) -> timedelta:
    """Spread polls so jobs submitted together do not hit the gateway together."""
    return timedelta(seconds=seconds * random.uniform(1.0, 1.2))


# On SQLite, words in prompts are found through this FTS5 table (migration 0006), kept in
# step with the jobs table by triggers; PostgreSQL uses a GIN index on the prompt instead.
PROMPT_FTS_TABLE = "jobs_videojob_fts"
SEARCH_WORDS = 8
# Up to this many prompts matching a search are fetched by id (see _prompt_search_postgres).
SEARCH_PROBE = 2000
# capped_counts(among=ids) reads the jobs by id when there are fewer ids than this many times the cap.
AMONG_READ = 10


class VideoJobQuerySet(models.QuerySet):
    def visible_to(self, user: Any) -> "VideoJobQuerySet":
        """The jobs user may see: the whole team's, or with SORAWEB_GALLERY_SCOPE=own only their own."""
        if settings.SORAWEB_GALLERY_SCOPE == "own" and not user.is_staff:
            return self.filter(owner_id=user.pk)
        return self

    def filtered(
        self,
        *,
        status: str | Iterable[str] | None = None,
        model: str | None = None,
        aspect_ratio: str | None = None,
        duration: int | None = None,
        owner: Any = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        search: str | None = None,
    ) -> "VideoJobQuerySet":
        """The gallery's and the API's filters in one place; None leaves a filter out. Parse values first.

        status is a tab name (VideoJob.TABS), one exact status or several; owner is a user or a username.
        """
        jobs = self
        if isinstance(status, str):
            status = VideoJob.TABS.get(status, (status,))
        if status:
            jobs = jobs.filter(status__in=status)
        if isinstance(owner, str):
            jobs = jobs.filter(owner__username=owner)
        elif owner is not None:
            jobs = jobs.filter(owner=owner)
        exact = {"model": model, "aspect_ratio": aspect_ratio, "duration": duration}
        jobs = jobs.filter(**{name: value for name, value in exact.items() if value not in (None, "")})
        if created_after is not None:
            jobs = jobs.filter(created_at__gte=created_after)
        if created_before is not None:
            jobs = jobs.filter(created_at__lt=created_before)
        if search:
            jobs = jobs.search(search)
        return jobs

    def older_than(self, cursor: tuple[datetime, int] | None) -> "VideoJobQuerySet":
        """The jobs after cursor in newest-first order (keyset pagination on (created_at, id))."""
        if not cursor:
            return self
        created_at, pk = cursor
        # The first filter is an index range; the second only settles ties on created_at.
        return self.filter(created_at__lte=created_at).filter(Q(created_at__lt=created_at) | Q(pk__lt=pk))

    def search(self, q: str) -> "VideoJobQuerySet":
        """Jobs whose prompt has all the words of q, or whose number (123, #123) or gateway id is q."""
        q = q.strip()[:200]
        found = Q(upstream_id=q) if q else Q(pk__in=[])
        if re.fullmatch(r"#?\d{1,18}", q):
            found |= Q(pk=int(q.lstrip("#")))
        words = re.findall(r"\w+", q)[:SEARCH_WORDS]
        if words and connection.vendor == "postgresql":
            found |= self._prompt_search_postgres(words)
        elif words:
            # Each word quoted: FTS5 reads bare AND/OR/NEAR and punctuation as its own syntax.
            match = " ".join(f'"{word}"' for word in words)
            sql = f"SELECT rowid FROM {PROMPT_FTS_TABLE} WHERE {PROMPT_FTS_TABLE} MATCH %s"
            found |= Q(pk__in=RawSQL(sql, [match]))
        return self.filter(found)

    def _prompt_search_postgres(self, words: list[str]) -> Q:
        # PostgreSQL's estimate for a word it has no statistics on is a flat 0.5% of rows,
        # so it would walk the newest rows through the whole table looking for a rare word.
        # Asking the GIN index first (one query) settles it: a few hits are fetched by id,
        # a common word is left to the walk, which finds a page of it at once.
        text = " ".join(words)
        query = "plainto_tsquery('english'::regconfig, %s)"
        matches = Q(RawSQL(f"prompt_search @@ {query}", [text], output_field=models.BooleanField()))
        # "the", "a of the": English stop words make an empty tsquery, which matches nothing,
        # so then the words are looked for whole in the prompt (FTS5 on SQLite keeps them).
        # numnode() of a constant is settled while planning: the side that does not apply
        # drops out of the plan, and a real word still goes to the GIN index. Words are \w+
        # only, so nothing in them is regex syntax.
        only_stop_words = RawSQL(f"numnode({query}) = 0", [text], output_field=models.BooleanField())
        matches |= Q(only_stop_words) & Q(*(Q(prompt__iregex=rf"\m{word}\M") for word in words))
        hits = list(self.model.objects.filter(matches).values_list("pk", flat=True)[: SEARCH_PROBE + 1])
        return Q(pk__in=hits) if len(hits) <= SEARCH_PROBE else matches

    def favourites_of(self, user: Any) -> "VideoJobQuerySet":
        """The jobs user starred (the library app's Favourite rows)."""
        return self.filter(favourites__user=user)

    def on_board(self, board_id: int, user: Any) -> "VideoJobQuerySet":
        """The jobs on one board user may see (the library app's boards follow the gallery scope)."""
        on_board = {"board_items__board_id": board_id}
        if settings.SORAWEB_GALLERY_SCOPE == "own" and not user.is_staff:
            on_board["board_items__board__created_by"] = user
        # One filter() call, so both conditions hold for the same board item.
        return self.filter(**on_board)

    def favourite_job_ids(self, user: Any) -> models.QuerySet:
        """The ids of the jobs user starred, read from the Favourite rows themselves."""
        favourites = self.model._meta.get_field("favourites").related_model.objects.filter(user=user)
        return favourites.order_by().values("job_id")

    def board_job_ids(self, board_id: int, user: Any) -> models.QuerySet:
        """The ids of the jobs on one board (as on_board sees it), read from the board's own rows."""
        items = self.model._meta.get_field("board_items").related_model.objects.filter(board_id=board_id)
        if settings.SORAWEB_GALLERY_SCOPE == "own" and not user.is_staff:
            items = items.filter(board__created_by=user)
        return items.order_by().values("job_id")

    def with_starred(self, user: Any) -> "VideoJobQuerySet":
        """Each job annotated with whether user starred it, inside the same query."""
        starred = self.model.objects.filter(pk=OuterRef("pk"), favourites__user=user)
        return self.annotate(starred=Exists(starred))

    def capped_counts(
        self, groups: dict[str, Iterable[str] | None], cap: int, *, among: models.QuerySet | None = None
    ) -> dict[str, int]:
        """{name: jobs in that group of statuses (None: all)}, each counted to cap + 1 at most, in one query.

        An exact count reads every job ever made, so a page showing counts would slow down
        as the studio's history grows; a capped count stops after cap + 1 rows.

        among: ids of jobs (board_job_ids, favourite_job_ids), few next to the whole history: only
        the jobs among them are counted, read by id (see _counts_among; a long list costs a second query).
        """
        jobs = self
        if among is not None:
            if (counts := self._counts_among(groups, cap, among)) is not None:
                return counts
            jobs = self.filter(pk__in=among)
        selects: list[str] = []
        params: list[Any] = []
        for statuses in groups.values():
            group = jobs.filter(status__in=statuses) if statuses else jobs
            sql, group_params = group.order_by().values("pk")[: cap + 1].query.sql_with_params()
            selects.append(f"(SELECT COUNT(*) FROM ({sql}) AS grp)")
            params.extend(group_params)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {', '.join(selects)}", params)
            return dict(zip(groups, cursor.fetchone(), strict=True))

    def _counts_among(
        self, groups: dict[str, Iterable[str] | None], cap: int, among: models.QuerySet
    ) -> dict[str, int] | None:
        """Every group counted in one pass over among's jobs, fetched by id; None if among is too long.

        Counted group by group, a board's jobs are found the way the planner prefers: walking
        the jobs table by status and probing each row for the board, which reads every failed
        job ever made to find none on a board of successes. One pass over the board's ids
        reads each of its jobs once. A board of AMONG_READ * cap jobs or more is left to the
        group by group counts, which stop at cap + 1: then this query only counts its first ids.
        """
        read = AMONG_READ * cap
        ids_sql, ids_params = among[:read].query.sql_with_params()
        quote, meta = connection.ops.quote_name, self.model._meta
        column = f"{quote(meta.db_table)}.{quote(meta.pk.column)}"
        # PostgreSQL turns "IN (subquery)" into a join and would scan the whole jobs table for
        # it; "= ANY(ARRAY(...))" is an index lookup per id. SQLite looks up each id of an IN itself.
        member = (
            f"{column} = ANY(ARRAY({ids_sql}))"
            if connection.vendor == "postgresql"
            else f"{column} IN ({ids_sql})"
        )
        jobs = self.filter(Q(RawSQL(member, ids_params, output_field=models.BooleanField())))
        sql, params = jobs.order_by().values("status").query.sql_with_params()
        tallies, tally_params = [], []
        for statuses in groups.values():
            if statuses:
                statuses = list(statuses)
                tallies.append(
                    f"COUNT(CASE WHEN grp.status IN ({', '.join(['%s'] * len(statuses))}) THEN 1 END)"
                )
                tally_params.extend(statuses)
            else:
                tallies.append("COUNT(*)")
        with connection.cursor() as cursor:
            # The condition on the number of ids is settled once, before any job is read:
            # a long board costs only the count of its first ids.
            cursor.execute(
                f"WITH listed AS (SELECT COUNT(*) AS n FROM ({ids_sql}) AS ids) "
                f"SELECT (SELECT n FROM listed), {', '.join(tallies)} FROM ({sql}) AS grp "
                "WHERE (SELECT n FROM listed) < %s",
                [*ids_params, *tally_params, *params, read],
            )
            listed, *found = cursor.fetchone()
        if listed >= read:
            return None
        return {name: min(count, cap + 1) for name, count in zip(groups, found, strict=True)}


class AttachRefused(Exception):
    """An id could not be attached to a job; str() says why, fit to show a person."""


class VideoJob(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Waiting"
        SUBMITTING = "submitting", "Submitting"
        QUEUED = "queued", "Queued"
        PROCESSING = "processing", "Generating"
        DOWNLOADING = "downloading", "Downloading"
        SUCCEEDED = "succeeded", "Ready"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"
        UNKNOWN = "unknown", "Needs attention"

    class FailureKind(models.TextChoices):
        REJECTED = "rejected", "Input rejected"
        MODERATION = "moderation", "Refused by moderation"
        ACCOUNT = "account", "Account problem"
        PROVIDER = "provider", "Provider error"
        TIMED_OUT = "timed_out", "Timed out"
        DOWNLOAD = "download", "Download failed"

    class Model(models.TextChoices):
        PLUS = "openAiSora2Plus", "Sora 2 Plus"
        PRO = "openAiSora2Pro", "Sora 2 Pro"

    class AspectRatio(models.TextChoices):
        LANDSCAPE = "16:9", "Landscape 16:9"
        PORTRAIT = "9:16", "Portrait 9:16"

    class Duration(models.IntegerChoices):
        SHORT = 4, "4 seconds"
        MEDIUM = 8, "8 seconds"
        LONG = 12, "12 seconds"

    # A job's settings, in one place: what a person chooses on the form, what the admin
    # shows, what "retry" and "use these settings" repeat (the reference image aside).
    CHOICES = ("model", "aspect_ratio", "duration")
    # Variants made by one submission (one group); the gallery relies on the bound too.
    MAX_VARIANTS = 4
    SETTINGS = ("prompt", *CHOICES)
    # The gateway's pixel size (width, height) for each orientation.
    SIZES: dict[str, tuple[int, int]] = {
        AspectRatio.LANDSCAPE: (1280, 720),
        AspectRatio.PORTRAIT: (720, 1280),
    }

    FINAL = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED, Status.UNKNOWN)
    ACTIVE = (Status.PENDING, Status.SUBMITTING, Status.QUEUED, Status.PROCESSING, Status.DOWNLOADING)
    POLLING = (Status.QUEUED, Status.PROCESSING)
    # The gallery's tabs (and the API's status filter): name -> the statuses it shows (None: all).
    TABS: dict[str, tuple[str, ...] | None] = {
        "all": None,
        "active": ACTIVE,
        "succeeded": (Status.SUCCEEDED,),
        "failed": (Status.FAILED, Status.UNKNOWN, Status.CANCELLED),
    }

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="jobs")
    prompt = models.TextField(max_length=4000)
    model = models.CharField(max_length=32, choices=Model, default=Model.PLUS)
    aspect_ratio = models.CharField(max_length=8, choices=AspectRatio, default=AspectRatio.LANDSCAPE)
    duration = models.PositiveSmallIntegerField(choices=Duration, default=Duration.MEDIUM)
    reference_image = models.ImageField(upload_to="references/%Y/%m/", blank=True)
    reference_note = models.CharField(max_length=200, blank=True)
    retry_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Variants made by one submission share a group id (a bare id, not a JobGroup row: a group
    # has nothing of its own but its members, and a row would outlive or miss them).
    group = models.UUIDField(null=True, blank=True, db_index=True)
    # The take to keep: starred on the group page (so "delete the rest" spares it), or set by
    # staff in the admin. Retention never removes a kept video's files.
    kept = models.BooleanField(default=False)

    status = models.CharField(max_length=16, choices=Status, default=Status.PENDING)
    failure_kind = models.CharField(max_length=16, choices=FailureKind, blank=True)
    error = models.TextField(blank=True)

    upstream_id = models.CharField(max_length=200, null=True, blank=True, unique=True)
    upstream_status = models.CharField(max_length=40, blank=True)
    result_url = models.URLField(max_length=2000, blank=True)
    result_expires_at = models.DateTimeField(null=True, blank=True)
    video = models.FileField(upload_to="videos/%Y/%m/", blank=True)
    poster = models.FileField(upload_to="posters/%Y/%m/", blank=True)
    actual_duration = models.FloatField(null=True, blank=True)
    cost = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)

    created_at = models.DateTimeField(default=timezone.now)
    submitted_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    # When a poll first saw the gateway say completed: submitted_at to this is the generation
    # time the ETA and the first poll learn from (completed_at also counts the download).
    generated_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    # What the sweep needs: when the row is next due, the lease a task must hold
    # to act on it, the time it gives up, and counters for bounded retries.
    next_check_at = models.DateTimeField(null=True, blank=True)
    lease_token = models.CharField(max_length=32, blank=True)
    deadline_at = models.DateTimeField(null=True, blank=True)
    submit_attempts = models.PositiveSmallIntegerField(default=0)
    poll_count = models.PositiveIntegerField(default=0)
    error_count = models.PositiveSmallIntegerField(default=0)
    download_attempts = models.PositiveSmallIntegerField(default=0)

    # What people and the late answers did to the job beyond its normal path:
    # [{"at": ISO time, "who": username or "", "what": sentence}], oldest first.
    history = models.JSONField(default=list, blank=True)
    # Staff decided about a job on the desk; it leaves the desk but keeps its state.
    dismissed_at = models.DateTimeField(null=True, blank=True)
    # Retention (SORAWEB_KEEP_VIDEOS_DAYS): a kept video is never removed; a removed one
    # leaves its row (spend, history) with the time its files went.
    files_removed_at = models.DateTimeField(null=True, blank=True)
    # The stored video and poster, in bytes, for the staff storage page.
    stored_bytes = models.PositiveBigIntegerField(null=True, blank=True)

    objects = VideoJobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="job_newest"),
            models.Index(fields=["status", "-created_at"], name="job_status_newest"),
            models.Index(fields=["owner", "-created_at"], name="job_owner_newest"),
            # The webhook sweep reads the jobs that finished since its last run.
            models.Index(fields=["completed_at"], name="job_completed"),
            # What changed since a moment: the spend page's cached summaries ask.
            models.Index(fields=["updated_at"], name="job_updated"),
            models.Index(
                fields=["next_check_at"],
                condition=Q(status__in=["pending", "submitting", "queued", "processing", "downloading"]),
                name="job_due",
            ),
            # The sweep's deadline check reads only rows past their deadline, not all in flight.
            models.Index(
                fields=["deadline_at"],
                condition=Q(status__in=["pending", "queued", "processing"]),
                name="job_overdue",
            ),
            # The desk's lists: uncertain creates and failed downloads, oldest first.
            models.Index(
                fields=["created_at"],
                condition=Q(status="unknown") | Q(status="failed", failure_kind="download"),
                name="job_desk",
            ),
            # Retention reads the oldest stored videos only.
            models.Index(
                fields=["completed_at"],
                condition=Q(status="succeeded", files_removed_at__isnull=True),
                name="job_stored_oldest",
            ),
            # A person's finished jobs since a cursor, for the "ready" notifications.
            models.Index(fields=["owner", "completed_at", "id"], name="job_owner_finished"),
            # jobs.estimates reads the newest finished jobs of one kind.
            models.Index(
                fields=["model", "duration", "aspect_ratio", "-generated_at"],
                condition=Q(status="succeeded"),
                name="job_generated_kind",
            ),
        ]

    def __str__(self):
        return f"#{self.pk} {self.prompt[:40]}"

    def save(self, *args, **kwargs):
        if self._state.adding:
            now = timezone.now()
            self.next_check_at = self.next_check_at or now + SUBMIT_GRACE
            self.deadline_at = self.deadline_at or now + timedelta(seconds=settings.SORA_JOB_DEADLINE)
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        # What this job cost stays counted against its owner's monthly limit, and what it
        # was and delivered stays in the team's spend history.
        Usage.objects.filter(job=self).update(
            cost=F("cost") if self.cost is None else self.cost,
            model=self.model,
            duration=self.duration,
            status=self.status,
            seconds=self.actual_duration if self.status == self.Status.SUCCEEDED else None,
            changed_at=timezone.now(),
        )
        return super().delete(*args, **kwargs)

    @property
    def is_final(self) -> bool:
        return self.status in self.FINAL

    def may_be_managed_by(self, user: Any) -> bool:
        """Cancel, delete and share are for the job's owner and staff; teammates may only look and retry."""
        return bool(user.is_staff or self.owner_id == user.pk)

    @property
    def is_landscape(self):
        return self.aspect_ratio == self.AspectRatio.LANDSCAPE

    @property
    def dimensions(self) -> tuple[int, int]:
        return self.SIZES[self.aspect_ratio]

    @property
    def size(self) -> str:
        """The gateway's pixel size for this orientation, as "WxH"."""
        return "{}x{}".format(*self.dimensions)

    def job_settings(self) -> dict[str, Any]:
        """{field: value} of this job's settings, for a retry or the form's pre-fill."""
        return {name: getattr(self, name) for name in self.SETTINGS}

    # --- Transitions: each a conditional UPDATE from the states it expects ----

    def _move(self, from_statuses: Iterable[str], where: Q | None = None, **fields: Any) -> bool:
        """Write fields only if the row is still in one of from_statuses (and matches where)."""
        fields["updated_at"] = timezone.now()
        rows = VideoJob.objects.filter(pk=self.pk, status__in=from_statuses)
        changed = rows.filter(where or Q()).update(**fields)
        if not changed:
            return False
        expressions = [name for name, value in fields.items() if hasattr(value, "resolve_expression")]
        for name, value in fields.items():
            if name not in expressions:
                setattr(self, name, value)
        if expressions:
            self.refresh_from_db(fields=expressions)
        if "status" in fields:
            log.info(
                "job %s upstream=%s -> %s %s", self.pk, self.upstream_id or "-", self.status, self.error[:200]
            )
        return True

    def claim_for_submit(self) -> bool:
        """Take a pending job for its one create call; False if someone else has it."""
        return self._move(
            [self.Status.PENDING],
            status=self.Status.SUBMITTING,
            submit_attempts=F("submit_attempts") + 1,
            next_check_at=timezone.now() + call_lease(),
            lease_token="",
        )

    def mark_submitted(self, created: "CreateResult") -> bool:
        """The gateway accepted the job: from now on it is polled, never created again.

        Also takes an answer that comes after the sweep gave up on the call (its lease ran
        out and the job went to UNKNOWN): that id is a paid video, so the job resumes.
        """
        from jobs import estimates  # It reads finished jobs, so it imports this module.

        now = timezone.now()
        first_poll = now + estimates.first_poll_delay(self.model, self.duration, self.aspect_ratio)
        fields: dict[str, Any] = {
            "status": self.Status.PROCESSING if created.status == "processing" else self.Status.QUEUED,
            "upstream_id": created.id,
            "upstream_status": created.raw_status,
            "submitted_at": now,
            "next_check_at": min(first_poll, self.deadline_at) if self.deadline_at else first_poll,
            "error": "",
        }
        if self._move([self.Status.SUBMITTING], **fields):
            return True
        # Only an UNKNOWN job nobody attached an id to yet: anything else was decided by a person.
        late = self._move(
            [self.Status.UNKNOWN],
            where=Q(upstream_id__isnull=True),
            completed_at=None,
            failure_kind="",
            lease_token="",
            dismissed_at=None,
            history=self._history_with(self._late_answer_note(created.id)),
            **fields,
        )
        if late:
            log.warning(
                "job %s: the create answer came after its lease ran out; tracking %s", self.pk, created.id
            )
        else:
            # Deleted, cancelled or given another id meanwhile: this log line is all that is left of it.
            log.warning(
                "job %s: the gateway accepted it as %s, but the job no longer waits for it",
                self.pk,
                created.id,
            )
        return late

    def _late_answer_note(self, upstream_id: str) -> str:
        note = f"The gateway's late answer to the create call arrived: id {upstream_id}; tracking resumed."
        retries = list(VideoJob.objects.filter(retry_of=self).values_list("pk", flat=True)[:3])
        if retries:
            # A person already retried it: that is a second video, made on purpose; both go on.
            note += " Its retry " + ", ".join(f"#{pk}" for pk in retries) + " is a separate job."
        return note

    def _history_with(self, what: str, who: Any = None, **extra: str) -> list[dict[str, str]]:
        """The row's history (read afresh) with one more entry, for the transition that writes it."""
        stored = VideoJob.objects.filter(pk=self.pk).values_list("history", flat=True).first() or []
        entry = {"at": timezone.now().isoformat(), "who": getattr(who, "username", "") or "", "what": what}
        entry.update(extra)
        return [*stored, entry][-HISTORY_LENGTH:]

    def retry_submit_later(self, error: "UpstreamError") -> bool:
        """The create call certainly never reached the gateway: try again later, a bounded number of times."""
        if self.submit_attempts >= settings.SORA_MAX_SUBMIT_ATTEMPTS:
            return self.mark_failed(
                self.FailureKind.PROVIDER,
                f"The video service could not be reached after {self.submit_attempts} tries: {error}",
            )
        delay = error.retry_after or min(300, 5 * 2**self.submit_attempts)
        return self._move(
            [self.Status.SUBMITTING],
            status=self.Status.PENDING,
            next_check_at=timezone.now() + timedelta(seconds=delay),
            error=f"Retrying: {error}",
        )

    def mark_unknown(self, reason: str) -> bool:
        return self._move(
            [self.Status.SUBMITTING],
            status=self.Status.UNKNOWN,
            error=f"{reason} The provider may have accepted (and billed) this job; check before retrying.",
            completed_at=timezone.now(),
        )

    def mark_failed(self, kind: str, message: str, from_statuses: Iterable[str] = ACTIVE) -> bool:
        return self._move(
            from_statuses,
            status=self.Status.FAILED,
            failure_kind=kind,
            error=message,
            completed_at=timezone.now(),
            lease_token="",
        )

    def cancel(self) -> bool:
        """Stop tracking a job that is not final (the gateway has no cancel call)."""
        return self._move(
            self.ACTIVE,
            status=self.Status.CANCELLED,
            error="Cancelled: soraweb stopped tracking this job.",
            completed_at=timezone.now(),
            lease_token="",
        )

    def take_lease(self, token: str) -> bool:
        """Claim the lease the sweep handed out; a duplicate or stale message gets False."""
        if not token:
            return False
        return bool(VideoJob.objects.filter(pk=self.pk, lease_token=token).update(lease_token=""))

    def apply_result(self, result: "TaskResult") -> bool:
        """Record one poll answer and move the job on."""
        now = timezone.now()
        if result.status == "completed":
            if not result.video_url:
                return self.record_poll_error("the provider said completed but gave no video link")
            return self._move(
                self.POLLING,
                status=self.Status.DOWNLOADING,
                upstream_status=result.raw_status,
                result_url=result.video_url,
                result_expires_at=now + RESULT_URL_LIFETIME,
                # Leased at once so the poll task can start the download without a sweep.
                lease_token=uuid.uuid4().hex,
                next_check_at=now + download_lease(),
                actual_duration=result.actual_duration,
                cost=result.cost,
                generated_at=now,
                poll_count=F("poll_count") + 1,
                error_count=0,
            )
        if result.status in ("failed", "cancelled"):
            message = result.error or f"The provider reported the job as {result.raw_status}."
            self._move(self.POLLING, upstream_status=result.raw_status, poll_count=F("poll_count") + 1)
            return self.mark_failed(failure_kind_for(message), message, from_statuses=self.POLLING)
        if result.status == "unknown":
            log.warning("job %s: unknown upstream status %r, treated as running", self.pk, result.raw_status)
        return self._move(
            self.POLLING,
            status=self.Status.QUEUED if result.status == "queued" else self.Status.PROCESSING,
            upstream_status=result.raw_status,
            poll_count=F("poll_count") + 1,
            error_count=0,
            next_check_at=now + jittered(settings.SORA_POLL_INTERVAL),
        )

    def record_poll_error(self, error: "UpstreamError | str") -> bool:
        """A bad answer: back off, and give up after a bounded run of them."""
        errors = self.error_count + 1
        if errors >= settings.SORA_MAX_POLL_ERRORS:
            return self.mark_failed(
                self.FailureKind.PROVIDER,
                f"The video service gave {errors} bad answers in a row; the last: {error}",
                from_statuses=self.POLLING,
            )
        retry_after = getattr(error, "retry_after", None)
        backoff = retry_after or settings.SORA_POLL_INTERVAL * 2 ** min(errors, 4)
        return self._move(
            self.POLLING,
            poll_count=F("poll_count") + 1,
            error_count=errors,
            next_check_at=timezone.now() + jittered(max(backoff, settings.SORA_POLL_INTERVAL)),
        )

    def record_download_error(self, error: Exception, permanent: bool = False) -> bool:
        attempts = self.download_attempts + 1
        expired = self.result_expires_at and self.result_expires_at <= timezone.now()
        if permanent or expired or attempts >= settings.SORA_MAX_DOWNLOAD_ATTEMPTS:
            return self.mark_failed(
                self.FailureKind.DOWNLOAD,
                f"The finished video could not be downloaded: {error}",
                from_statuses=[self.Status.DOWNLOADING],
            )
        return self._move(
            [self.Status.DOWNLOADING],
            download_attempts=attempts,
            next_check_at=timezone.now() + timedelta(seconds=min(600, 10 * 2**attempts)),
            error=f"Download retrying: {error}",
        )

    def wait_for_storage(self, error: Exception) -> bool:
        """The disk was full: try again later while the link lives, without using up an attempt.

        A full disk says nothing about the video, and the gateway's link lasts a day: failing
        the job would lose a paid video that an admin freeing space could still save.
        """
        if not self.link_alive:
            return self.record_download_error(error, permanent=True)
        return self._move(
            [self.Status.DOWNLOADING],
            next_check_at=timezone.now() + timedelta(seconds=settings.SORAWEB_STORAGE_RETRY_SECONDS),
            lease_token="",
            error=f"Waiting for storage space: {error}",
        )

    def mark_succeeded(
        self,
        video_name: str,
        poster_name: str,
        actual_duration: float | None = None,
        stored_bytes: int | None = None,
    ) -> bool:
        return self._move(
            [self.Status.DOWNLOADING],
            status=self.Status.SUCCEEDED,
            video=video_name,
            poster=poster_name,
            stored_bytes=stored_bytes,
            actual_duration=self.actual_duration or actual_duration,
            completed_at=timezone.now(),
            error="",
            lease_token="",
        )

    # --- The sweep --------------------------------------------------------------

    @classmethod
    def fail_overdue(cls, now: datetime | None = None) -> int:
        """Jobs past their deadline fail with a clear reason instead of spinning forever."""
        now = now or timezone.now()
        endings = [
            (
                [cls.Status.PENDING, *cls.POLLING],
                Q(deadline_at__lte=now),
                cls.FailureKind.TIMED_OUT,
                "The video was not ready before the deadline; soraweb stopped waiting.",
            ),
            (
                # A download whose worker keeps dying never records an error: its link's expiry ends it.
                [cls.Status.DOWNLOADING],
                Q(result_expires_at__lte=now),
                cls.FailureKind.DOWNLOAD,
                "The video's link expired before soraweb could download it.",
            ),
        ]
        count = 0
        for statuses, overdue, kind, message in endings:
            for job in cls.objects.filter(overdue, status__in=statuses)[:500]:
                count += job.mark_failed(kind, message, from_statuses=statuses)
        return count

    @classmethod
    def lease_due(cls, limit: int = 200, now: datetime | None = None) -> list[tuple[int, str, str]]:
        """Lease the rows whose turn has come; returns [(pk, status, token)] to dispatch."""
        now = now or timezone.now()
        with transaction.atomic():
            due = cls.objects.filter(status__in=cls.ACTIVE, next_check_at__lte=now).order_by("next_check_at")
            if connection.features.has_select_for_update_skip_locked:
                due = due.select_for_update(skip_locked=True)
            rows = list(due.values_list("pk", "status")[:limit])
            # One token per sweep: a task claims with (pk, token), so it is unique enough.
            token = uuid.uuid4().hex
            for status in {status for _, status in rows}:
                if status == cls.Status.PENDING:
                    # The submit claim itself guards pending rows: no lease, just a later turn.
                    next_check, lease_token = now + SUBMIT_GRACE, ""
                elif status == cls.Status.DOWNLOADING:
                    next_check, lease_token = now + download_lease(), token
                else:
                    next_check, lease_token = now + call_lease(), token
                pks = [pk for pk, row_status in rows if row_status == status]
                cls.objects.filter(pk__in=pks, status=status).update(
                    next_check_at=next_check, lease_token=lease_token, updated_at=now
                )
        return [(pk, status, token) for pk, status in rows]

    # --- People's actions (the studio and the admin share these) -----------------

    def retry_as_new(self, owner: Any, group: uuid.UUID | None = None) -> "VideoJob":
        """A new pending job with these settings and the same stored reference image."""
        job = VideoJob(owner=owner, retry_of=self, group=group, **self.job_settings())
        job.share_reference_from(self)
        job.save()
        return job

    def share_reference_from(self, source: "VideoJob") -> None:
        """Point this (unsaved) job at source's stored reference image: one file, never a copy.

        media.delete_files keeps a file while another job still uses it. Raises
        FileNotFoundError when the file is gone from storage, so nothing is sent without it.
        """
        self.reference_note = source.reference_note
        if source.reference_image:
            name = source.reference_image.name
            if not source.reference_image.storage.exists(name):
                raise FileNotFoundError(f"job {source.pk}'s reference image {name} is missing from storage")
            self.reference_image = name

    def check_now(self) -> bool:
        """Make a queued or generating job due at once, so the next sweep polls it."""
        return self._move(self.POLLING, next_check_at=timezone.now())

    def attach_upstream_id(self, upstream_id: str, by: Any) -> None:
        """Give an UNKNOWN job the id staff found in the gateway's dashboard; the sweep checks it at once.

        No call here: the next sweep's poll is the one status call. If the gateway does not
        know the id, the job comes back to UNKNOWN (see refuse_poll), ready for another id.
        """
        upstream_id = (upstream_id or "").strip()
        if not UPSTREAM_ID_SHAPE.fullmatch(upstream_id):
            raise AttachRefused("A gateway job id is 1 to 200 characters of letters, digits and punctuation.")
        if self.status != self.Status.UNKNOWN:
            state = self.get_status_display().lower()
            raise AttachRefused(f"Only a job that needs attention takes an id; this one is {state}.")
        other = (
            VideoJob.objects.filter(upstream_id=upstream_id)
            .exclude(pk=self.pk)
            .values_list("pk", flat=True)
            .first()
        )
        if other:
            raise AttachRefused(
                f"Job #{other} already has the id {upstream_id}; one gateway job is one soraweb job."
            )
        now = timezone.now()
        try:
            with transaction.atomic():
                moved = self._move(
                    [self.Status.UNKNOWN],
                    where=Q(upstream_id__isnull=True),
                    status=self.Status.QUEUED,
                    upstream_id=upstream_id,
                    upstream_status="",
                    submitted_at=self.submitted_at or now,
                    completed_at=None,
                    failure_kind="",
                    error="",
                    lease_token="",
                    next_check_at=now,
                    # Waiting starts again: the original deadline may long be past.
                    deadline_at=now + timedelta(seconds=settings.SORA_JOB_DEADLINE),
                    poll_count=0,
                    error_count=0,
                    dismissed_at=None,
                    history=self._history_with(
                        f"Attached the gateway's id {upstream_id}.", who=by, attached=upstream_id
                    ),
                )
        except IntegrityError:
            raise AttachRefused(f"Another job has just been given the id {upstream_id}.") from None
        if not moved:
            raise AttachRefused("This job changed meanwhile (its answer may have arrived); reload the page.")

    def refuse_poll(self, error: "UpstreamError", kind: str) -> bool:
        """The gateway refused a status check for good. An id staff attached and the gateway
        never confirmed goes back to UNKNOWN (a mistyped id is not a failed video); else the job fails."""
        entries = self.history or []
        unconfirmed = self.poll_count == 0 and entries and entries[-1].get("attached") == self.upstream_id
        if unconfirmed:
            return self._move(
                self.POLLING,
                status=self.Status.UNKNOWN,
                upstream_id=None,
                completed_at=timezone.now(),
                lease_token="",
                error=f"The id {self.upstream_id} was not accepted: {error} "
                "Attach another id, or retry as a new job.",
                history=self._history_with(f"The gateway refused the id {self.upstream_id}: {error}"),
            )
        return self.mark_failed(kind, str(error), from_statuses=self.POLLING)

    def retry_download(self, by: Any) -> bool:
        """Try a failed download again while the gateway's link is still alive."""
        now = timezone.now()
        return self._move(
            [self.Status.FAILED],
            where=Q(failure_kind=self.FailureKind.DOWNLOAD, result_expires_at__gt=now) & ~Q(result_url=""),
            status=self.Status.DOWNLOADING,
            failure_kind="",
            error="",
            completed_at=None,
            download_attempts=0,
            lease_token="",
            next_check_at=now,
            dismissed_at=None,
            history=self._history_with("Asked for the download to be tried again.", who=by),
        )

    def dismiss(self, by: Any) -> bool:
        """Take a job off the desk: a person has decided about it."""
        return self._move(
            [self.Status.UNKNOWN, self.Status.FAILED, *self.ACTIVE],
            dismissed_at=timezone.now(),
            history=self._history_with("Took it off the desk.", who=by),
        )

    @property
    def history_entries(self) -> list[dict[str, Any]]:
        """The history with its times as datetimes, for pages."""
        return [{**entry, "at": datetime.fromisoformat(entry["at"])} for entry in self.history or []]

    def mark_files_removed(self, days: int) -> bool:
        """Retention took the video and poster; the row stays for spend history and the audit."""
        return self._move(
            [self.Status.SUCCEEDED],
            where=Q(files_removed_at__isnull=True, kept=False),
            video="",
            poster="",
            files_removed_at=timezone.now(),
            history=self._history_with(f"The video was removed after {days} days (the server's retention)."),
        )

    @property
    def link_alive(self) -> bool:
        return bool(self.result_url and self.result_expires_at and self.result_expires_at > timezone.now())


def cursor_value(job: VideoJob) -> str:
    """A keyset cursor naming job's place in newest-first order: "<microseconds>_<pk>"."""
    micros = calendar.timegm(job.created_at.utctimetuple()) * 10**6 + job.created_at.microsecond
    return f"{micros}_{job.pk}"


def parse_cursor(value: str | None) -> tuple[datetime, int] | None:
    """(created_at, pk) from a cursor_value(), or None for anything else (never an overflowing pk)."""
    match = re.fullmatch(r"([0-9]{1,17})_([0-9]{1,19})", value or "")
    if not match or not (pk := params.pk_or_none(match[2])):
        return None
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(match[1])), pk


def failure_kind_for(message: str) -> str:
    lowered = message.lower()
    if any(word in lowered for word in MODERATION_WORDS):
        return VideoJob.FailureKind.MODERATION
    return VideoJob.FailureKind.PROVIDER


class UserLimits(models.Model):
    """One person's limits, where an admin set them; an empty field follows the server default."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="limits"
    )
    active_jobs = models.PositiveIntegerField(
        "jobs in progress at once",
        null=True,
        blank=True,
        help_text="Empty: the server default (SORAWEB_LIMIT_ACTIVE_JOBS). 0: no limit.",
    )
    jobs_per_day = models.PositiveIntegerField(
        "jobs per day",
        null=True,
        blank=True,
        help_text="Empty: the server default (SORAWEB_LIMIT_JOBS_PER_DAY). 0: no limit.",
    )
    monthly_spend = models.DecimalField(
        "spend per month",
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text="In the video service's currency. Empty: the server default "
        "(SORAWEB_LIMIT_MONTHLY_SPEND). 0: no limit.",
    )

    class Meta:
        verbose_name = verbose_name_plural = "limits"

    def __str__(self):
        return f"limits of {self.user}"


class Usage(models.Model):
    """One submitted job, counted against its owner's limits.

    Kept when the job is deleted (with the job's cost copied in), so deleting
    videos never gives back a day's jobs or a month's spend.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    job = models.OneToOneField(
        VideoJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="usage"
    )
    created_at = models.DateTimeField(default=timezone.now)
    # The local calendar day of created_at: the spend page groups by it without a
    # per-row date function, and a month is a range of it.
    day = models.DateField(null=True, blank=True)
    # Only set once the job is gone; until then the job's own fields count.
    cost = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    model = models.CharField(max_length=32, blank=True)
    duration = models.PositiveSmallIntegerField(null=True, blank=True)
    status = models.CharField(max_length=16, blank=True)
    seconds = models.FloatField("seconds delivered", null=True, blank=True)
    # When this row last changed: the spend page's cached summaries check it.
    changed_at = models.DateTimeField(auto_now=True, null=True)

    class Meta:
        indexes = [
            models.Index(fields=["user", "created_at"], name="usage_user_created"),
            models.Index(fields=["day", "user"], name="usage_day_user"),
            models.Index(fields=["changed_at"], name="usage_changed"),
        ]

    def __str__(self):
        return f"{self.user} at {self.created_at:%Y-%m-%d %H:%M}"

    def save(self, *args, **kwargs):
        if self.day is None:
            self.day = timezone.localdate(self.created_at)
        super().save(*args, **kwargs)


class Heartbeat(models.Model):
    """When a background service last proved it was alive, for /healthz."""

    name = models.CharField(max_length=40, primary_key=True)
    seen_at = models.DateTimeField()

    def __str__(self):
        return f"{self.name} at {self.seen_at:%H:%M:%S}"

    @classmethod
    def beat(cls, name):
        cls.objects.update_or_create(name=name, defaults={"seen_at": timezone.now()})

    @classmethod
    def age(cls, name):
        """Seconds since the last beat, or None if there never was one."""
        seen = cls.objects.filter(name=name).values_list("seen_at", flat=True).first()
        return (timezone.now() - seen).total_seconds() if seen else None
