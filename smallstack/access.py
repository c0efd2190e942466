"""Who may see the dashboard, in one place: the pages, the API, the websocket and the signals
that close sockets all ask :func:`can_use_dashboard`."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

AsyncView = Callable[..., Coroutine[Any, Any, HttpResponse]]


def can_use_dashboard(user: Any) -> bool:
    """The dashboard's access policy: an active staff member (anonymous users are not)."""
    return bool(
        getattr(user, "is_authenticated", False)
        and getattr(user, "is_active", False)
        and getattr(user, "is_staff", False)
    )


async def is_staff(request: HttpRequest) -> bool | None:
    """None for anonymous users, else whether the user may use the dashboard."""
    user = await request.auser()
    request.user = user  # the template's `user` then needs no second, sync lookup
    if not user.is_authenticated:
        return None
    return can_use_dashboard(user)


def staff_required(view: AsyncView) -> AsyncView:
    """Anonymous users are sent to the login page; signed-in non-staff users get 403."""

    @wraps(view)
    async def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        allowed = await is_staff(request)
        if allowed is None:
            return redirect_to_login(request.get_full_path())
        if not allowed:
            raise PermissionDenied("The dashboard is for staff members only.")
        return await view(request, *args, **kwargs)

    return wrapper
