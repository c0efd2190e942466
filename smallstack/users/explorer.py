"""Imported by the Explorer's autodiscovery: the user model's list, unless switched off
(``SMALLSTACK_USERS["EXPLORER"] = False``)."""

from smallstack.users.registration import register_user_model

register_user_model()
