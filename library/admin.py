from django.contrib import admin

from library.models import Board, BoardItem, Favourite


class BoardItemInline(admin.TabularInline):
    model = BoardItem
    raw_id_fields = ["job", "added_by"]
    extra = 0


@admin.register(Board)
class BoardAdmin(admin.ModelAdmin):
    list_display = ["name", "created_by", "created_at", "updated_at"]
    search_fields = ["name"]
    inlines = [BoardItemInline]


@admin.register(Favourite)
class FavouriteAdmin(admin.ModelAdmin):
    list_display = ["user", "job", "created_at"]
    raw_id_fields = ["job"]
