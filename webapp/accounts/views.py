"""Small account-level views."""

from django.http import HttpRequest, JsonResponse


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness probe for compose and load balancers (public, reveals nothing)."""
    return JsonResponse({"ok": True})
