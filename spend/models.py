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
