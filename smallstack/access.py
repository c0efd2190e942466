"""Staff-only access for the dashboard's async views."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

AsyncView = Callable[..., Awaitable[HttpResponse]]


async def is_staff(request: HttpRequest) -> bool | None:
    """None for anonymous users, else whether the user is active staff."""
    user = await request.auser()
    request.user = user  # the template's `user` then needs no second, sync lookup
    if not user.is_authenticated:
        return None
    return bool(user.is_active and user.is_staff)


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
