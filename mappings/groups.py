"""The default "Operators" group: what a department operator may do in the admin."""

from typing import Any

OPERATOR_GROUP = "Operators"
OPERATOR_PERMISSIONS = [
    ("mappings", "view_department"),
    ("mappings", "view_connectycubeapp"),
    ("mappings", "view_sipmapping"),
    ("mappings", "add_sipmapping"),
    ("mappings", "change_sipmapping"),
    ("mappings", "delete_sipmapping"),
    ("calls", "view_call"),
    ("calls", "view_callleg"),
    ("calls", "view_callevent"),
    ("calls", "export_call"),
    ("calls", "hangup_call"),
    ("calls", "transfer_call"),
]


def ensure_operator_group(**kwargs: Any) -> None:
    """Create the group and grant its permissions; keeps permissions an admin added."""
    from django.contrib.auth.models import Group, Permission

    group, _ = Group.objects.get_or_create(name=OPERATOR_GROUP)
    for app_label, codename in OPERATOR_PERMISSIONS:
        perm = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
        if perm is not None:
            group.permissions.add(perm)
