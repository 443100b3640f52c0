"""The account pages behind the API: personal tokens and webhooks."""

from django.contrib import messages
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from api.forms import TokenForm, WebhookForm
from api.models import ApiToken, Webhook
from api.tasks import webhook_sweep
from api.webhooks import queue_test


@require_http_methods(["GET", "POST"])
def tokens(request):
    """List, create and revoke your own tokens; a new token is shown on this one answer only."""
    form = TokenForm(request.POST or None)
    new_secret = None
    if request.method == "POST" and form.is_valid():
        # Rendered, not redirected: the secret never goes into a message, the session or a URL.
        _, new_secret = ApiToken.issue(request.user, form.cleaned_data["name"])
        form = TokenForm()
    rows = ApiToken.objects.filter(user=request.user)
    response = render(request, "api/tokens.html", {"form": form, "tokens": rows, "new_secret": new_secret})
    response["Cache-Control"] = "no-store"
    return response


@require_POST
def revoke_token(request, pk):
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    if token.revoke():
        messages.success(request, f"Revoked “{token.name}”: it stops working at once.")
    return redirect("api:tokens")


@require_http_methods(["GET", "POST"])
def webhook_list(request):
    form = WebhookForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        hook = form.save(commit=False)
        hook.owner = request.user
        hook.save()
        messages.success(request, "Webhook added. Its secret is below: use it to check each signature.")
        return redirect("api:webhooks")
    hooks = Webhook.objects.filter(owner=request.user)
    rows = [(hook, list(hook.deliveries.all()[:10])) for hook in hooks]
    return render(request, "api/webhooks.html", {"form": form, "hooks": rows, "now": timezone.now()})


@require_POST
def webhook_test(request, pk):
    hook = get_object_or_404(Webhook, pk=pk, owner=request.user)
    queue_test(hook)
    # Ring the sweep now rather than at its next beat.
    transaction.on_commit(webhook_sweep.delay)
    messages.success(request, "A test event is on its way; its answer appears in the log below.")
    return redirect("api:webhooks")


@require_POST
def webhook_delete(request, pk):
    get_object_or_404(Webhook, pk=pk, owner=request.user).delete()
    messages.success(request, "Webhook deleted.")
    return redirect("api:webhooks")
