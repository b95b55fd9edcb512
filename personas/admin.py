from decimal import Decimal

from django.contrib import admin, messages
from django.db.models import Count, Sum

from media_pipeline import services as pipeline
from personas.models import ConsentRecord, PlatformAdaptation, Subscription, WritingPersona

COST_PLACES = Decimal("0.0001")  # UsageRecord.cost_usd's decimal places


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = ["user", "user_email", "tier", "updated_at"]
    list_filter = ["tier"]
    list_editable = ["tier"]
    search_fields = ["user__email", "user__username"]

    @admin.display(ordering="user__email")
    def user_email(self, obj):
        return obj.user.email


class PlatformAdaptationInline(admin.TabularInline):
    model = PlatformAdaptation
    extra = 0


@admin.register(WritingPersona)
class WritingPersonaAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "user_email",
        "tier",
        "voice_training_status",
        "voice_provider",
        "avatar_training_status",
        "avatar_provider",
        "uses",
        "total_cost_usd",
        "approved_at",
    ]
    list_filter = ["voice_training_status", "avatar_training_status", "voice_provider", "user__subscription__tier"]
    search_fields = ["user__email", "user__username", "name"]
    readonly_fields = ["voice_id", "avatar_id", "voice_trained_at", "avatar_created_at", "total_cost_usd", "uses"]
    inlines = [PlatformAdaptationInline]
    actions = ["retrain_voice", "recreate_avatar"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("user__subscription")
            .annotate(_cost=Sum("usage_records__cost_usd"), _uses=Count("usage_records"))
        )

    @admin.display(ordering="user__email")
    def user_email(self, obj):
        return obj.user.email

    @admin.display(ordering="user__subscription__tier")
    def tier(self, obj):
        return obj.user.subscription.get_tier_display()

    @admin.display(description="Cost (USD)", ordering="_cost")
    def total_cost_usd(self, obj):
        # Shown at the usage rows' own precision (SQLite's sum of decimals carries extra digits).
        return (getattr(obj, "_cost", None) or Decimal("0")).quantize(COST_PLACES)

    @admin.display(description="Metered uses", ordering="_uses")
    def uses(self, obj):
        return getattr(obj, "_uses", 0)

    @admin.action(description="Retrain voice from the stored sample")
    def retrain_voice(self, request, queryset):
        for persona in queryset:
            try:
                job = pipeline.retrain_voice(persona=persona)
            except pipeline.PipelineError as exc:
                self.message_user(request, f"{persona}: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{persona}: voice training job #{job.pk} queued.", messages.SUCCESS)

    @admin.action(description="Recreate avatar from the stored photo")
    def recreate_avatar(self, request, queryset):
        for persona in queryset:
            try:
                job = pipeline.recreate_avatar(persona=persona)
            except pipeline.PipelineError as exc:
                self.message_user(request, f"{persona}: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{persona}: avatar job #{job.pk} queued.", messages.SUCCESS)


@admin.register(ConsentRecord)
class ConsentRecordAdmin(admin.ModelAdmin):
    list_display = ["user", "capability", "text_version", "ip_address", "granted_at", "withdrawn_at"]
    list_filter = ["capability", "text_version"]
    search_fields = ["user__email"]
    readonly_fields = [f.name for f in ConsentRecord._meta.fields]

    def has_add_permission(self, request):
        return False
