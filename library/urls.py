from django.urls import path

from library import views

app_name = "library"

urlpatterns = [
    path("jobs/<int:pk>/star/", views.star, name="star"),
    path("boards/", views.boards, name="boards"),
    path("boards/<int:pk>/rename/", views.rename, name="rename"),
    path("boards/<int:pk>/delete/", views.delete, name="delete"),
    path("boards/<int:pk>/add/", views.add, name="add"),
    path("boards/<int:pk>/remove/", views.remove, name="remove"),
    path("boards/add/", views.add_to_chosen, name="add_to_chosen"),
]
