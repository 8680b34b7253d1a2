from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from .export import export_for_user


@require_GET
@login_required
@permission_required("calls.export_call", raise_exception=True)
def export_csv(request: HttpRequest) -> HttpResponse:
    """Stream the caller's CDRs as CSV; the query string holds the same filters as the admin."""
    response, errors = export_for_user(request.user, request.GET)
    if response is None:
        return JsonResponse({"error": "invalid filter", "fields": errors}, status=400)
    return response
