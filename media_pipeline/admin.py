from django.contrib import admin

from media_pipeline.models import MediaAsset, MediaJob, UsageRecord


@admin.register(MediaJob)
class MediaJobAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "content_type", "user", "provider", "status", "progress", "attempts", "cost_usd"]
    list_filter = ["kind", "status", "provider", "user__subscription__tier"]
    search_fields = ["user__email", "provider_job_id"]
    readonly_fields = ["estimated_cost_usd", "cost_usd", "media_seconds", "created_at", "started_at", "finished_at"]
    list_select_related = ["user"]


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin):
    list_display = ["created_at", "user", "kind", "content_type", "provider", "tier", "media_seconds", "cost_usd"]
    list_filter = ["kind", "provider", "tier"]
    search_fields = ["user__email"]
    readonly_fields = [f.name for f in UsageRecord._meta.fields]
    list_select_related = ["user"]

    def has_add_permission(self, request):
        return False


@admin.register(MediaAsset)
class MediaAssetAdmin(admin.ModelAdmin):
    list_display = ["created_at", "user", "kind", "content_type", "title", "duration_seconds", "provider"]
    list_filter = ["kind", "content_type", "provider"]
    search_fields = ["user__email", "title"]
    list_select_related = ["user"]
