"""Open dashboards follow their user's access: signing out or losing staff status closes them.

The websocket handshake checks the user once; these receivers close sockets that outlive that
check, in every process (through the channel layer), with the same codes the handshake uses:
signing out closes the sockets of the session that ended (4401; the user's other sessions stay
valid, and so do their dashboards), losing staff or active status closes all of the user's (4403).
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth.signals import user_logged_out
from django.db.models.signals import post_save
from django.dispatch import receiver

from smallstack import live
from smallstack.access import can_use_dashboard
from smallstack.consumers import CLOSE_FORBIDDEN, CLOSE_UNAUTHENTICATED

_ACCESS_FIELDS = frozenset({"is_staff", "is_active"})


@receiver(user_logged_out, dispatch_uid="smallstack.close_on_logout")
def close_on_logout(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    # logout() sends the signal before flushing the session: its key is still the one that
    # authenticated this session's sockets.
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if user is not None and session_key:
        async_to_sync(live.aclose_user_sockets)(
            user.pk, CLOSE_UNAUTHENTICATED, session_key=session_key
        )


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="smallstack.close_on_demotion")
def close_on_demotion(sender: Any, instance: Any, created: bool, update_fields=None, **kwargs):
    if created or (update_fields is not None and not _ACCESS_FIELDS & set(update_fields)):
        return
    if not can_use_dashboard(instance):
        async_to_sync(live.aclose_user_sockets)(instance.pk, CLOSE_FORBIDDEN)
