"""Department isolation for the admin: operators see and edit only their departments' rows."""

from typing import Any

from django.contrib import admin
from django.db.models import Model, QuerySet
from django.http import HttpRequest


def user_department_ids(request: HttpRequest) -> list[int]:
    cached = getattr(request, "_department_ids", None)
    if cached is None:
        cached = list(request.user.departments.values_list("pk", flat=True))
        request._department_ids = cached
    return cached


class DepartmentScopedAdmin(admin.ModelAdmin):
    """A ModelAdmin for models with a `department` foreign key.

    A superuser sees every row. Any other staff user sees the rows of the
    departments they operate, and may only pick those departments.
    """

    department_field = "department"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        qs = super().get_queryset(request)
        if request.user.is_superuser:
            return qs
        return qs.filter(**{f"{self.department_field}__in": user_department_ids(request)})

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == self.department_field and not request.user.is_superuser:
            kwargs["queryset"] = db_field.remote_field.model.objects.filter(
                pk__in=user_department_ids(request)
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def _in_scope(self, request: HttpRequest, obj: Model | None) -> bool:
        if obj is None or request.user.is_superuser:
            return True
        return getattr(obj, f"{self.department_field}_id") in user_department_ids(request)

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return super().has_view_permission(request, obj) and self._in_scope(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return super().has_change_permission(request, obj) and self._in_scope(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return super().has_delete_permission(request, obj) and self._in_scope(request, obj)
