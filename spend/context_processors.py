from django.utils.functional import SimpleLazyObject

from spend import budget


def budget_banner(request):
    # Lazy: only a page that shows the banner (to someone signed in) computes it, and then from a short cache.
    return {"budget_banner": SimpleLazyObject(budget.banner)}
