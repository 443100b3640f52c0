from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models


class TeamBudget(models.Model):
    """The team's monthly budget: one row (pk 1); an empty amount follows the server default."""

    amount = models.DecimalField(
        "monthly budget",
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text="For the whole team per calendar month, in the video service's currency. "
        "Empty: the server default (SORAWEB_TEAM_MONTHLY_BUDGET). 0: no limit.",
    )

    class Meta:
        verbose_name = verbose_name_plural = "team budget"

    def __str__(self):
        return "team budget"


class DaySummary(models.Model):
    """The spend figures of one person's jobs of one model and length submitted on one day.

    A cache of Usage and its jobs, kept so the spend page reads a few thousand rows
    instead of every job of the month; summaries.refresh() rebuilds a day whose jobs changed.
    """

    day = models.DateField()
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    model = models.CharField(max_length=32, blank=True)
    duration = models.PositiveSmallIntegerField(default=0)  # 0: not recorded
    jobs = models.PositiveIntegerField(default=0)
    seconds = models.FloatField(default=0)
    known_cost = models.DecimalField(max_digits=14, decimal_places=4, default=0)
    unknown_cost = models.PositiveIntegerField(default=0)
    charged_failures = models.PositiveIntegerField(default=0)
    charged_failures_cost = models.DecimalField(max_digits=14, decimal_places=4, default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "user", "model", "duration"], name="spend_summary_group")
        ]

    def __str__(self):
        return f"{self.day} {self.user_id} {self.model} {self.duration}s"


class SummarisedDay(models.Model):
    """A day whose DaySummary rows hold every change made before computed_at."""

    day = models.DateField(primary_key=True)
    computed_at = models.DateTimeField()
    # Of the day's figures: the month's cached totals stay valid while no digest changes.
    digest = models.CharField(max_length=24)

    def __str__(self):
        return f"{self.day} as of {self.computed_at:%Y-%m-%d %H:%M:%S}"
