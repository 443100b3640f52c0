from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from api.v1 import urls as api_urls
from jobs.health import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    # Only these of django.contrib.auth's pages: no password reset by e-mail, which
    # would be a public page sending mail from a server that has no mail set up.
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/password_change/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path(
        "accounts/password_change/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path("", include("handover.urls")),
    path("library/", include("library.urls")),
    path("api/v1/", api_urls()),
    path("account/", include("api.urls")),
    path("spend/", include("spend.urls")),
    path("audit/", include("audit.urls")),
    path("ops/", include("ops.urls")),
    path("", include("jobs.urls")),
]

# A database that is away answers 503 with a plain page; anything else the usual 500.
handler500 = "ops.outage.server_error"
