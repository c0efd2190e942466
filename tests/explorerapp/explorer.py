from django.contrib.auth.models import Group

from explorer.registry import explorer
from smallstack.displays import DashboardWidget


class GroupsWidget(DashboardWidget):
    title = "Discovered groups"

    def get_data(self, model_class=None):
        return {"headline": model_class.__name__}


class GroupAdmin:
    list_display = ["name"]
    explorer_dashboard_widgets = [GroupsWidget()]


explorer.register(Group, GroupAdmin, group="Discovered")
