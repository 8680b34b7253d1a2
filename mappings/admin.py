from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from .forms import SecretFieldsFormMixin
from .models import ConnectyCubeApp, Department, SipMapping
from .scoping import DepartmentScopedAdmin, user_department_ids
from .services import validate_credentials


class SecretModelForm(SecretFieldsFormMixin, ModelForm):
    pass


@admin.register(Department)
class DepartmentAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "mapping_count"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    filter_horizontal = ["operators"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        qs = super().get_queryset(request)
        return qs if request.user.is_superuser else qs.filter(pk__in=user_department_ids(request))

    @admin.display(description=_("mappings"))
    def mapping_count(self, obj: Department) -> int:
        return obj.mappings.count()


@admin.register(ConnectyCubeApp)
class ConnectyCubeAppAdmin(admin.ModelAdmin):
    form = SecretModelForm
    list_display = ["name", "app_id", "api_url", "chat_url"]
    fieldsets = [
        (None, {"fields": ["name", "app_id", "auth_key", "auth_secret"]}),
        (_("Endpoints"), {"fields": ["api_url", "chat_url", "chat_domain"]}),
    ]


@admin.register(SipMapping)
class SipMappingAdmin(DepartmentScopedAdmin):
    form = SecretModelForm
    list_display = [
        "sip_uri",
        "display_name",
        "department",
        "cc_login",
        "agent_list",
        "ring_strategy",
        "enabled",
    ]
    list_filter = ["enabled", "ring_strategy", "department"]
    search_fields = ["sip_uri", "display_name", "cc_login"]
    list_select_related = ["department", "app"]
    actions = ["test_credentials"]
    fieldsets = [
        (None, {"fields": ["sip_uri", "department", "display_name", "enabled"]}),
        (_("ConnectyCube account"), {"fields": ["app", "cc_login", "cc_password", "cc_user_id"]}),
        (pgettext_lazy("mapping fieldset", "Ringing"), {"fields": ["agents", "ring_strategy", "ring_timeout"]}),
        (pgettext_lazy("mapping fieldset", "Media"), {"fields": ["prefer_opus"]}),
    ]

    @admin.display(description=_("agents"))
    def agent_list(self, obj: SipMapping) -> str:
        return ", ".join(str(a) for a in obj.agents) or "—"

    @admin.action(description=_("Test credentials (log in to ConnectyCube)"), permissions=["view"])
    def test_credentials(self, request: HttpRequest, queryset: QuerySet) -> None:
        for mapping in queryset.select_related("app"):
            result = validate_credentials(mapping)
            if result.ok:
                if mapping.cc_user_id is None and result.user_id:
                    SipMapping.objects.filter(pk=mapping.pk).update(cc_user_id=result.user_id)
                elif mapping.cc_user_id and result.user_id and mapping.cc_user_id != result.user_id:
                    self.message_user(
                        request,
                        _("%(uri)s: logged in, but as user %(got)s, not the stored %(want)s.")
                        % {"uri": mapping, "got": result.user_id, "want": mapping.cc_user_id},
                        messages.WARNING,
                    )
                    continue
                self.message_user(request, f"{mapping}: {result.message}", messages.SUCCESS)
            else:
                self.message_user(request, f"{mapping}: {result.message}", messages.ERROR)


admin.site.site_header = _("ccbridge administration")
admin.site.site_title = _("ccbridge")
admin.site.index_title = _("SIP ↔ ConnectyCube bridge")
