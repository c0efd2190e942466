"""Status: health checks, heartbeats, uptime, the status pages and the health endpoints.

Projects add their own checks with :func:`register_check` (in an ``AppConfig.ready()``)::

    from smallstack import heartbeat

    heartbeat.register_check("payments", ping_payments, timeout=1.0)
"""

from smallstack.heartbeat.probes import CheckResult, register_check, unregister_check

__all__ = ["CheckResult", "register_check", "unregister_check"]
