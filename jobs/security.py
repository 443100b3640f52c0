"""Who is signing in from where, for django-axes' lockouts."""

from django.conf import settings


def client_ip(request):
    """The client's address: the socket's, or the one our own proxies put in X-Forwarded-For.

    Each trusted proxy appends the address it was reached from, so the entry
    SORAWEB_TRUSTED_PROXY_COUNT from the end is the one no client can forge.
    """
    remote = request.META.get("REMOTE_ADDR") or None
    count = settings.SORAWEB_TRUSTED_PROXY_COUNT
    if count <= 0:
        return remote
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    return hops[-count] if len(hops) >= count else remote
