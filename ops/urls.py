from django.urls import path

from ops import views

app_name = "ops"
urlpatterns = [
    path("storage/", views.storage, name="storage"),
]
