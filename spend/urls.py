from django.urls import path

from spend import views

app_name = "spend"

urlpatterns = [
    path("", views.page, name="page"),
    path("export.csv", views.export, name="export"),
]
