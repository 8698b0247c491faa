"""Every page behind login, from day one, without a decorator to forget."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, JsonResponse

# Paths reachable without a session: the login page itself, static files, health.
PUBLIC_PREFIXES = ("/login/", "/static/", "/healthz", "/admin/login/")


class LoginRequiredMiddleware:
    """Redirect anonymous users to the login page; JSON endpoints get a 401 instead."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated or request.path.startswith(PUBLIC_PREFIXES):
            return self.get_response(request)
        if request.path.startswith("/api/"):
            return JsonResponse({"error": "authentication required"}, status=401)
        return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
