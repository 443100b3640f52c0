from django.contrib import admin
from django.shortcuts import redirect

import audit
from spend import budget
from spend.models import TeamBudget


@admin.register(TeamBudget)
class TeamBudgetAdmin(admin.ModelAdmin):
    """One row: the list page opens it, nobody adds or deletes another."""

    fields = ["amount", "this_month"]
    readonly_fields = ["this_month"]

    @admin.display(description="This month")
    def this_month(self, row):
        month = budget.this_month(row=row)
        if not month.budget:
            return "No budget: nothing is counted against one."
        return (
            f"{month.known:.2f} known cost, {month.in_progress} video(s) in progress counted at "
            f"{month.estimate:.2f} each: {month.share:.0%} of {month.budget:.2f}"
        )

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        TeamBudget.objects.get_or_create(pk=1)
        return redirect("admin:spend_teambudget_change", 1)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if "amount" in form.changed_data:
            before = form.initial.get("amount")
            audit.record(
                request.user,
                "budget_changed",
                target="team monthly budget",
                before=_text(before),
                after=_text(obj.amount),
            )
        budget.forget_banner()


def _text(amount):
    return "server default" if amount is None else f"{amount:.2f}"
