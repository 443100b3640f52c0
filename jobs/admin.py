from django.contrib import admin

from jobs.models import VideoJob


@admin.register(VideoJob)
class VideoJobAdmin(admin.ModelAdmin):
    list_display = ["id", "status", "owner", "model", "aspect_ratio", "duration", "cost", "created_at"]
