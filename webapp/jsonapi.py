"""Small helpers shared by the JSON endpoints: one decorator, one body parser.

Session auth is enforced by the login middleware and CSRF by Django's middleware
(unsafe methods need the ``X-CSRFToken`` header); these helpers only make every
error a JSON answer with a clear message.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse


class BadRequest(Exception):
    """Invalid input; answered with ``status`` and ``{"error": message, **extra}``."""

    def __init__(self, message: str, status: int = 400, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.extra = extra


def json_view(
    *methods: str,
) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Allow only ``methods``; turn Http404 and :class:`BadRequest` into JSON errors."""
    allowed = {m.upper() for m in methods}

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in allowed:
                response = JsonResponse(
                    {"error": f"method {request.method} not allowed"}, status=405
                )
                response["Allow"] = ", ".join(sorted(allowed))
                return response
            try:
                return view(request, *args, **kwargs)
            except Http404:
                return JsonResponse({"error": "not found"}, status=404)
            except BadRequest as exc:
                return JsonResponse({"error": exc.message, **exc.extra}, status=exc.status)

        return wrapper

    return decorate


def json_body(request: HttpRequest, max_bytes: int = 1024 * 1024) -> dict[str, Any]:
    """The request body as a JSON object, or :class:`BadRequest` saying what is wrong."""
    if len(request.body) > max_bytes:
        raise BadRequest(f"body larger than {max_bytes} bytes", status=413)
    try:
        data = json.loads(request.body or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    return data
