"""Who may see what: users see their own objects, staff see everyone's.

Every view and API endpoint that takes an id goes through :func:`get_visible_or_404`,
so another user's object is a 404 (we do not confirm that it exists).
"""

from __future__ import annotations

from typing import TypeVar

from django.db.models import Model, QuerySet
from django.http import Http404

M = TypeVar("M", bound=Model)


def visible_to(user, queryset: QuerySet[M], owner_field: str = "owner") -> QuerySet[M]:
    """The part of ``queryset`` that ``user`` may see."""
    if user.is_staff:
        return queryset
    return queryset.filter(**{owner_field: user})


def get_visible_or_404(user, queryset: QuerySet[M], owner_field: str = "owner", **lookup) -> M:
    """One object ``user`` may see, or Http404 (also for other users' objects)."""
    try:
        return visible_to(user, queryset, owner_field).get(**lookup)
    except queryset.model.DoesNotExist:
        raise Http404 from None
