"""Two user models the project's settings can swap in (``tests/customuser_settings.py``)."""

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.db import models


class EmailUser(AbstractBaseUser):
    """Signs in by email; has ``is_active``, ``is_staff`` and ``last_login``, but no
    ``date_joined`` and no name fields."""

    email = models.EmailField(unique=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)

    objects = BaseUserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"


class BareUser(AbstractBaseUser):
    """A username and a password, nothing else: no ``is_active`` field (every account is
    active), no ``last_login``, ``date_joined``, ``is_staff``, email or name."""

    username = models.CharField(max_length=50, unique=True)
    last_login = None

    objects = BaseUserManager()

    USERNAME_FIELD = "username"
