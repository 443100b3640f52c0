from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils.functional import SimpleLazyObject


def soraweb(request):
    return {
        "demo_mode": settings.SORA_DEMO_MODE,
        "cost_unit": settings.SORAWEB_COST_UNIT,
        # Lazy: only the sign-in page asks, so other pages pay no query for it.
        "needs_setup": SimpleLazyObject(lambda: not get_user_model().objects.exists()),
    }
