from django.conf import settings


def soraweb(request):
    return {"demo_mode": settings.SORA_DEMO_MODE}
