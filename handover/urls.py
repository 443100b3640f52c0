from django.urls import path

from handover import views

app_name = "handover"

urlpatterns = [
    path("bulk/", views.bulk, name="bulk"),
    path("jobs/<int:pk>/share/", views.share, name="share"),
    path("boards/<int:pk>/share/", views.share_board, name="share_board"),
    path("shares/", views.shares, name="shares"),
    path("shares/<int:pk>/revoke/", views.revoke, name="revoke"),
    path("s/<str:token>/", views.shared, name="shared"),
    path("s/<str:token>/video.mp4", views.shared_video, name="shared_video"),
    path("s/<str:token>/poster.jpg", views.shared_poster, name="shared_poster"),
    path("s/<str:token>/download", views.shared_download, name="shared_download"),
    # A board link's videos: the same views, naming one of the board's jobs.
    path("s/<str:token>/v/<int:pk>/video.mp4", views.shared_video, name="shared_board_video"),
    path("s/<str:token>/v/<int:pk>/poster.jpg", views.shared_poster, name="shared_board_poster"),
    path("s/<str:token>/v/<int:pk>/download", views.shared_download, name="shared_board_download"),
]
