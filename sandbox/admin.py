"""Admin for sandbox users (password set through a write-only field) and their sessions."""

from django import forms
from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from .models import SandboxSession, SandboxUser


class SandboxUserForm(forms.ModelForm):
    new_password = forms.CharField(
        label=_("password"), required=False, strip=False,
        widget=forms.PasswordInput(render_value=False),
        help_text=_("Stored hashed. Leave empty to keep the current password."),
    )

    class Meta:
        model = SandboxUser
        fields = ["id", "login", "full_name", "email"]

    def clean(self):
        cleaned = super().clean()
        if not self.instance.password and not cleaned.get("new_password"):
            self.add_error("new_password", _("A new user needs a password."))
        return cleaned

    def save(self, commit=True):
        user = super().save(commit=False)
        if self.cleaned_data.get("new_password"):
            user.set_password(self.cleaned_data["new_password"])
        if commit:
            user.save()
        return user


@admin.register(SandboxUser)
class SandboxUserAdmin(admin.ModelAdmin):
    form = SandboxUserForm
    list_display = ["id", "login", "full_name", "email", "created"]
    search_fields = ["login", "full_name", "email"]

    def get_readonly_fields(self, request, obj=None):
        return ["id"] if obj is not None else []

    def lookup_allowed(self, lookup, value, request=None):
        # Never let the changelist filter on password hashes.
        if lookup.startswith("password"):
            return False
        return super().lookup_allowed(lookup, value, request)


@admin.register(SandboxSession)
class SandboxSessionAdmin(admin.ModelAdmin):
    list_display = ["pk", "user", "app_id", "created", "expires"]
    list_filter = ["app_id"]
    # The token is a credential: never shown back.
    exclude = ["token"]
    readonly_fields = ["user", "app_id", "created", "expires"]

    def has_add_permission(self, request):
        return False
