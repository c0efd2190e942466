from explorer.registry import explorer
from smallstack.displays import DashboardWidget

from .admin import OrderAdmin
from .models import Order


class OrdersWidget(DashboardWidget):
    title = "Orders"
    icon = (
        '<svg viewBox="0 0 24 24" width="22" height="22" fill="currentColor">'
        '<path d="M7 18a2 2 0 1 0 0 4 2 2 0 0 0 0-4zM1 2v2h2l3.6 7.59-1.35 2.45A2 2 0 0 0 7 17h12'
        "v-2H7.42a.25.25 0 0 1-.25-.25l.03-.12.9-1.63h7.45a2 2 0 0 0 1.75-1.03l3.58-6.49A1 1 0 0 0"
        ' 20 4H5.21l-.94-2H1zm16 16a2 2 0 1 0 0 4 2 2 0 0 0 0-4z"/></svg>'
    )
    order = 25

    def get_data(self, model_class=None):
        total = model_class.objects.count()
        open_count = model_class.objects.filter(status="open").count()
        return {
            "headline": f"{total:,} orders",
            "detail": f"{open_count} open",
        }


OrderAdmin.explorer_dashboard_widgets = [OrdersWidget()]
explorer.register(Order, OrderAdmin, group="Sales")
