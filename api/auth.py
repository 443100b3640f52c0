"""Who is calling: a personal token (Bearer) or, for the docs page, the browser's session."""

import logging
import math
import time
from functools import cache

import redis
from django.conf import settings
from django.http import HttpRequest
from ninja.security import HttpBearer, SessionAuth

from api.errors import ApiError
from api.models import ApiToken

log = logging.getLogger(__name__)


class TokenAuth(HttpBearer):
    """Authorization: Bearer sw_…; exempt from CSRF, since a browser never sends it on its own."""

    def __call__(self, request: HttpRequest):
        # Not ninja's own: with DEBUG on it logs a header it does not understand, token and all.
        scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
        return self.authenticate(request, secret) if scheme.lower() == "bearer" and secret else None

    def authenticate(self, request: HttpRequest, token: str):
        row = ApiToken.authenticate(token.strip())
        if row is None:
            return None
        request.user = row.user
        request.api_token = row  # type: ignore[attr-defined]
        throttle(f"token:{row.hashed[:16]}")
        return row.user


class SessionUser(SessionAuth):
    """The signed-in browser (the docs page's "Try it out"); CSRF is checked as on any form."""

    def __call__(self, request: HttpRequest):
        # A request that names a token stands or falls by it, never by a cookie beside it; one
        # with neither is told to send a token (401), not that a CSRF token is missing.
        if "Authorization" in request.headers or not request.user.is_authenticated:
            return None
        return super().__call__(request)

    def authenticate(self, request: HttpRequest, key: str | None):
        user = super().authenticate(request, key)
        if user is not None:
            throttle(f"user:{user.pk}")
        return user


def throttle(who: str) -> None:
    """A fixed one-minute window per caller in Redis, shared by every web process."""
    limit = settings.SORAWEB_API_RATE_LIMIT
    if not limit:
        return
    now = time.time()
    key = f"soraweb:api-rate:{who}:{int(now // 60)}"
    try:
        with _redis().pipeline() as pipe:
            count, _ = pipe.incr(key).expire(key, 120).execute()
    except redis.RedisError as exc:
        # A broken Redis must not take the API down with it: no limit until it is back.
        log.warning("API rate limit not applied: Redis said %s", exc)
        return
    if count > limit:
        retry_after = max(1, math.ceil(60 - now % 60))
        raise ApiError(
            429,
            "rate_limited",
            f"Too many requests: the limit is {limit} a minute. Try again in {retry_after} s.",
            headers={"Retry-After": str(retry_after)},
        )


@cache
def _redis() -> redis.Redis:
    # The embedded Redis is named the way kombu spells a Unix socket.
    url = settings.REDIS_URL.replace("redis+socket://", "unix://", 1)
    return redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
