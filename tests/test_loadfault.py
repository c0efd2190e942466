"""The load-and-fault suite, short: ``benchmarks.loadtest.run`` at a quarter scale, 24 s of load.

One run (module fixture, about 45 s of wall time) serves every test: uvicorn with two workers
over SQLite and a real Redis; 50 API pollers, 75 dashboards on websockets and 5 page loads a
second; then bad clients (2,500 bad bearer keys, junk requests and websocket frames); then the
faults (a widget starts hanging, another raising, Redis restarts, a worker is killed with
SIGKILL). ``make loadtest`` runs the same at full scale and prints the figures.

Timing bounds here are deliberately loose: server and load generator share two cores in CI,
so a latency ratio or a memory figure measured over seconds is noisy. The correctness
properties (no 5xx, every dashboard back in sync, the database released) are exact.
"""

from __future__ import annotations

import pytest

from benchmarks import loadtest
from tests.conftest import require_binary

pytestmark = pytest.mark.redis

SECONDS, SCALE = 24.0, 0.25
#: Good clients with the bad ones: at least this share of the answers they got alone ...
COUNT_RATIO_BOUND = 0.9
#: ... and p99 below this (the full run's target is p99 within 1.2x of alone). The bad load is
#: several times the good request rate on two cores the server already shares with two load
#: generators, so latency rises with the CPU it takes; starving would be answers lost or
#: waiting seconds, which these bounds catch.
P99_BOUND_MS = 5000
#: The bad clients are paced by the server's answers: at least this share of the bad keys must
#: have gone out for the run to have tested anything.
BAD_KEYS_SENT_BOUND = 0.3
#: Growth of a worker's resident memory under steady load (the full run's target is 10 %).
RSS_GROWTH_BOUND = 0.20
#: ``SMALLSTACK_THREAD_POOL_SIZE``'s default: the widget pool may grow to this many threads.
POOL_THREADS = 32


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    result = loadtest.run(
        seconds=SECONDS,
        scale=SCALE,
        redis_binary=require_binary("redis-server"),
        work_dir=tmp_path_factory.mktemp("loadtest"),
    )
    loadtest.print_report(result)  # shown with any failure ("Captured stdout setup")
    return result


def _check(report, name: str) -> dict:
    [found] = [c for c in report["checks"] if c["name"] == name]
    return found


def test_good_clients_get_no_5xx_and_only_expected_answers(report):
    good = report["good"]
    assert good["five_xx"] == 0, good["five_xx_first"]
    assert good["wrong"] == 0, good["wrong_first"]
    counts = {client: report["phases"]["alone"][client]["count"] for client in loadtest.CLIENTS}
    assert all(counts.values()), counts


def test_connection_errors_happen_only_at_the_worker_kill(report):
    good = report["good"]
    assert good["transport_errors_outside_kill_window"] == 0, good["transport_outside_first"]


def test_the_killed_worker_is_replaced(report):
    faults = report["faults"]
    assert "replacement_pid" in faults, faults
    roles = {row["role"] for row in report["workers"]}
    assert {"killed", "replacement", "original (survived)"} <= roles, report["workers"]


def test_every_dropped_dashboard_reconnects_and_gets_a_snapshot(report):
    dashboards = report["dashboards"]
    assert dashboards["dropped"] > 0, "the kill should have dropped the killed worker's sockets"
    assert dashboards["reconnected_and_synced"] == dashboards["dropped"], dashboards
    # Redis restarted under every socket: each was told, and each caught up with a snapshot.
    assert dashboards["saw_push_unavailable"] == dashboards["count"], dashboards
    assert dashboards["in_sync_at_end"] == dashboards["count"], dashboards
    assert not dashboards["errors"], dashboards["errors"]


def test_bad_http_clients_get_4xx_never_5xx(report):
    bad = report["bad"]
    assert "crashed" not in bad, bad
    assert _check(report, "zero 5xx to bad HTTP clients")["ok"], bad["http"]
    assert bad["http_unexpected_count"] == 0, bad["http_unexpected_kinds"]
    sent = bad["bad_keys_sent"]
    assert sent >= report["config"]["bad_keys"] * BAD_KEYS_SENT_BOUND, sent


def test_bad_websocket_frames_get_an_error_and_keep_the_connection(report):
    bad = report["bad"]
    assert bad["ws_unexpected_count"] == 0, bad["ws_unexpected_kinds"]
    # Anonymous sockets were closed 4401 and a foreign Origin refused (else counted above).
    assert bad["ws"]["anonymous socket"].get("closed 4401"), bad["ws"]["anonymous socket"]


def test_no_unexpected_exception_in_the_server_log(report):
    log = report["server_log"]
    assert log["asgi_exceptions"] == 0 and log["internal_server_errors"] == 0, {
        name: entry["count"] for name, entry in log["unexpected"].items()
    }


def test_no_database_connection_is_left_open(report):
    # Idle after the warm-up and idle after the run: no worker has the database file open.
    for moment in ("database_at_baseline", "database"):
        held = {pid: fds for pid, fds in report[moment]["held"].items() if fds}
        assert not held, (moment, held)


def test_the_server_stops_on_sigterm(report):
    assert not report["shutdown"]["workers_left_running"], report["shutdown"]


def test_bad_clients_do_not_starve_the_good_ones(report):
    # The full run's target is p99 within 1.2x (make loadtest reports it); here, over 8 s phases
    # on two shared cores, a p99 is a handful of samples: the bound is loose, and absolute.
    for client in ("api-fast", "page"):
        alone = report["phases"]["alone"][client]
        with_bad = report["phases"]["bad"][client]
        assert with_bad["count"] >= alone["count"] * COUNT_RATIO_BOUND, (client, alone, with_bad)
        assert with_bad["p99_ms"] <= P99_BOUND_MS, (client, report["phases"])


def test_worker_memory_and_threads_stay_bounded(report):
    for row in report["workers"]:
        if row["role"] == "original (survived)":
            # Under the same load, before the faults (the kill then doubles its share).
            assert row["rss_growth_steady"] <= RSS_GROWTH_BOUND, row
            # Idle before and after: the threads added are at most the widget pool's.
            assert row["idle"]["threads"] <= row["baseline"]["threads"] + POOL_THREADS, row
        elif row["role"] == "replacement":
            assert row["rss_growth"] <= RSS_GROWTH_BOUND, row
