from django.urls import path

from jobs import desk, groups, notify, views

app_name = "jobs"

urlpatterns = [
    path("", views.gallery, name="gallery"),
    path("cards/", views.cards, name="cards"),
    path("new/", views.create, name="create"),
    path("setup/", views.setup, name="setup"),
    path("jobs/<int:pk>/", views.detail, name="detail"),
    path("jobs/<int:pk>/retry/", views.retry, name="retry"),
    path("jobs/<int:pk>/cancel/", views.cancel, name="cancel"),
    path("jobs/<int:pk>/delete/", views.delete, name="delete"),
    path("jobs/<int:pk>/video.mp4", views.video, name="video"),
    path("jobs/<int:pk>/download", views.download, name="download"),
    path("jobs/<int:pk>/poster.jpg", views.poster, name="poster"),
    path("jobs/<int:pk>/reference.jpg", views.reference_image, name="reference_image"),
    path("jobs/<int:pk>/keep/", groups.keep, name="keep"),
    path("groups/<uuid:group>/", groups.group, name="group"),
    path("groups/<uuid:group>/delete-rest/", groups.delete_rest, name="delete_rest"),
    path("groups/<uuid:group>/retry/", groups.retry_group, name="retry_group"),
    path("r/<str:token>/", views.reference, name="reference"),
    path("me/finished/", notify.finished, name="finished"),
    path("desk/", desk.desk, name="desk"),
    path("desk/<int:pk>/attach/", desk.attach, name="desk_attach"),
    path("desk/<int:pk>/redownload/", desk.redownload, name="desk_redownload"),
    path("desk/<int:pk>/check/", desk.check, name="desk_check"),
    path("desk/<int:pk>/dismiss/", desk.dismiss, name="desk_dismiss"),
]
