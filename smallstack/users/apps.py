from django.apps import AppConfig


class UsersConfig(AppConfig):
    name = "smallstack.users"
    # Not "users": projects often have an app of that name.
    label = "smallstack_users"
    verbose_name = "Users"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model

        from smallstack import conf, dashboard
        from smallstack.users import checks  # noqa: F401 — system checks register
        from smallstack.users.widgets import UsersWidget

        if conf.get("BUILTIN_WIDGETS"):
            # Scoped to the user model, so the card also heads the Explorer's list of users.
            dashboard.register(UsersWidget(), model=get_user_model(), app_label=self.label)
