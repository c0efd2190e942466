"""``GET /api/metrics``: the dashboard in the Prometheus text exposition format.

Two kinds of metrics, in one answer:

- **Per widget**, read at scrape time from the widgets' latest results (:class:`WidgetCollector`):
  state, stale, age of the data, last evaluation's duration, circuit breaker, the widget's own
  ``data["metrics"]`` values. The scrape evaluates every widget as a page does: a result
  younger than its ``cache_ttl`` is reused and an evaluation in flight is joined, so a scrape
  every few seconds runs a widget no more often than its ``cache_ttl`` allows. With a shared
  cache the results, and so these gauges, are the whole fleet's.
- **Counters and gauges of the processes** (:mod:`smallstack.telemetry`): evaluations,
  timeouts, errors, evaluations in flight, sync threads, cache hits and misses, live sockets
  and pushes. Under gunicorn they are kept in prometheus-client's multiprocess directory and
  summed over the host's workers; otherwise they are this process's (the default registry,
  with its ``process_*`` and ``python_*`` metrics).

Same access as the rest of the API (staff bearer token or staff session), after an optional
allow-list of client addresses, ``SMALLSTACK_DASHBOARD["METRICS_ALLOWED_IPS"]``.
"""

from __future__ import annotations

import functools
import gzip
import ipaddress
import logging
import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse
from ninja import Router
from ninja.errors import AuthorizationError
from prometheus_client import REGISTRY, CollectorRegistry, Metric
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from smallstack import conf, dashboard, telemetry
from smallstack.api.auth import staff_auth_chain
from smallstack.contract import State, WidgetContext

__all__ = [
    "WidgetCollector",
    "allowed_client",
    "collect_registry",
    "render",
    "router",
    "widget_values",
]

logger = logging.getLogger("smallstack.metrics")

router = Router(tags=["metrics"])

ADDRESS_REFUSED = "This address may not read the metrics (METRICS_ALLOWED_IPS)."
WIDGET_LABELS = ["key", "group", "app"]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


# -- who may scrape ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _networks(entries: tuple[Any, ...]) -> tuple[Network, ...]:
    """The allow-list's networks; an entry that is no address or network is logged and left
    out (it matches nobody: with only bad entries, nobody is allowed)."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except (TypeError, ValueError):
            logger.error("METRICS_ALLOWED_IPS: %r is not an IP address or network; ignored", entry)
    return tuple(networks)


def address_allowed(address: str, networks: Sequence[Network]) -> bool:
    """Whether ``address`` (``REMOTE_ADDR``) is in one of ``networks``; never for a non-IP."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)  # ::ffff:10.0.0.1 is 10.0.0.1
    return any(ip in network or (mapped is not None and mapped in network) for network in networks)


async def allowed_client(request: HttpRequest) -> None:
    """First auth callback of the endpoint: 403 for an address outside the allow-list.

    Returns None (not a user), so the staff token or session is still required after it.
    """
    entries = conf.get("METRICS_ALLOWED_IPS") or ()
    if not entries:
        return None
    if isinstance(entries, str):  # one address instead of a list (smallstack.E005 says so)
        entries = [entries]
    # Hashable for the cache; anything else cannot be an address and is reported as such.
    key = tuple(e if isinstance(e, str | int) else repr(e) for e in entries)
    if not address_allowed(request.META.get("REMOTE_ADDR") or "", _networks(key)):
        raise AuthorizationError(message=ADDRESS_REFUSED)
    return None


# -- per-widget gauges -----------------------------------------------------------------------


def widget_values(context: WidgetContext) -> Iterator[tuple[str, float]]:
    """The ``(name, value)`` pairs of ``data["metrics"]``: string names, finite numbers.

    Anything else (a bool, a string, an infinite or too large number, a ``metrics`` that is
    not a dict) is left out with a debug log line, never failing the scrape.
    """
    values = context.data.get("metrics") if context.data else None
    if values is None:
        return
    if not isinstance(values, dict):
        logger.debug("Widget %s: data['metrics'] is not a dict; not exported", context.key)
        return
    for name, value in values.items():
        if not isinstance(name, str) or isinstance(value, bool):
            number = None
        elif isinstance(value, int | float):
            try:
                number = float(value)
            except OverflowError:
                number = None
        else:
            number = None
        if number is None or not math.isfinite(number):
            logger.debug(
                "Widget %s: metrics[%r] = %r is not a number; skipped", context.key, name, value
            )
            continue
        yield name, number


class WidgetCollector(Collector):
    """Gauges of the given widget contexts (one scrape's evaluation)."""

    def __init__(self, contexts: Iterable[WidgetContext]) -> None:
        self.contexts = list(contexts)

    def collect(self) -> Iterable[Metric]:
        state = GaugeMetricFamily(
            "smallstack_widget_state",
            "1 for the state the widget's latest evaluation ended in (ok, timeout, error), "
            "0 for the others.",
            labels=[*WIDGET_LABELS, "state"],
        )
        stale = GaugeMetricFamily(
            "smallstack_widget_stale",
            "1 while the widget shows its last good data because its latest evaluation failed.",
            labels=WIDGET_LABELS,
        )
        age = GaugeMetricFamily(
            "smallstack_widget_age_seconds",
            "Seconds since the widget's data was produced (its last good evaluation); "
            "absent while it has none.",
            labels=WIDGET_LABELS,
        )
        duration = GaugeMetricFamily(
            "smallstack_widget_duration_seconds",
            "How long the widget's latest evaluation took.",
            labels=WIDGET_LABELS,
        )
        breaker = GaugeMetricFamily(
            "smallstack_widget_breaker_open",
            "1 while the widget's circuit breaker is open (it is paused, not evaluated).",
            labels=WIDGET_LABELS,
        )
        status = GaugeMetricFamily(
            "smallstack_widget_status",
            "1 with the status the widget reports in its data (ok, warning, error, ...); "
            "absent if it reports none.",
            labels=[*WIDGET_LABELS, "status"],
        )
        value = GaugeMetricFamily(
            "smallstack_widget_value",
            "The numbers a widget exposes in data['metrics'], by name.",
            labels=[*WIDGET_LABELS, "name"],
        )
        for context in self.contexts:
            labels = [context.key, context.group or "", context.app_label or ""]
            for each in State:
                state.add_metric([*labels, str(each)], 1.0 if context.state == each else 0.0)
            stale.add_metric(labels, 1.0 if context.stale else 0.0)
            seconds = context.age_seconds
            if seconds is not None:
                age.add_metric(labels, seconds)
            duration.add_metric(labels, context.elapsed_ms / 1000)
            info = getattr(context, "breaker", None)
            is_open = isinstance(info, dict) and info.get("state") == "open"
            breaker.add_metric(labels, 1.0 if is_open else 0.0)
            if isinstance(context.status, str):
                status.add_metric([*labels, context.status], 1.0)
            for name, number in widget_values(context):
                value.add_metric([*labels, name], number)
        return [state, stale, age, duration, breaker, status, value]


class _ProcessRegistry(Collector):
    """prometheus-client's default registry, as one collector of a scrape's registry."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def collect_registry(contexts: Iterable[WidgetContext]) -> CollectorRegistry:
    """One scrape's registry: the widgets' gauges and the processes' metrics."""
    registry = CollectorRegistry(auto_describe=False, support_collectors_without_names=True)
    registry.register(WidgetCollector(contexts))
    if telemetry.multiprocess():
        MultiProcessCollector(registry)  # registers itself; sums the workers' files
    else:
        registry.register(_ProcessRegistry())
    return registry


def render(
    contexts: Iterable[WidgetContext],
    accept: str = "",
    accept_encoding: str = "",
    names: Sequence[str] = (),
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one scrape, as prometheus-client's own exporters negotiate
    them: the text format (or OpenMetrics if ``accept`` asks for it), gzipped if
    ``accept_encoding`` allows, only the ``names`` families if given.

    Reads the multiprocess directory's files in multiprocess mode: call it off the event loop.
    """
    registry = collect_registry(contexts)
    encoder, content_type = choose_encoder(accept)
    body = encoder(registry.restricted_registry(names) if names else registry)
    headers = {"Content-Type": content_type, "Vary": "Accept, Accept-Encoding"}
    if gzip_accepted(accept_encoding):
        body = gzip.compress(body, compresslevel=6)
        headers["Content-Encoding"] = "gzip"
    return body, headers


# -- the endpoint ----------------------------------------------------------------------------


@router.get(
    "/metrics",
    auth=[allowed_client, *staff_auth_chain],
    include_in_schema=False,  # text, not JSON: documented in the README
    summary="Prometheus metrics",
)
async def metrics(request: HttpRequest) -> HttpResponse:
    """Every widget's state and the service's counters, in the Prometheus text format.

    ``?name[]=<family>`` (repeatable) limits the answer to those metric families.
    """
    contexts = await dashboard.aget_widget_contexts()
    body, headers = await sync_to_async(render, thread_sensitive=False)(
        contexts,
        request.headers.get("Accept", ""),
        request.headers.get("Accept-Encoding", ""),
        request.GET.getlist("name[]"),
    )
    response = HttpResponse(body, content_type=headers.pop("Content-Type"))
    for name, value in headers.items():
        response[name] = value
    return response
