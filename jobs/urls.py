from django.urls import path

from jobs import views

app_name = "jobs"

urlpatterns = [
    path("", views.gallery, name="gallery"),
    path("r/<str:token>/", views.reference, name="reference"),
]
