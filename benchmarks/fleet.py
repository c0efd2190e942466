"""One evaluation across the fleet: 4 uvicorn workers x 50 pollers, with and without a shared cache.

``python -m benchmarks.fleet`` (part of ``make bench``) serves the counted widgets of
tests/fleetapp (``cache_ttl=5``, 0.2 s each, one plain ``def`` and one ``async def``) with
``uvicorn --workers 4`` and a throwaway redis-server, and has 50 API clients poll them without
pause for ``FLEET_SECONDS`` (default 12) - twice: with ``REDIS_URL`` (the shared cache and the
evaluation lock), then with ``CACHE_URL=locmem://`` (the same Redis for the channel layer, but
each process keeps its own results). It prints how often each widget really ran, by how many
processes, and the polls answered. Target: with Redis about one evaluation per 5 s in all (at
most 3 in 12 s); each process on its own makes that about 4 times as many.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

WORKERS, POLLERS, TTL = 4, 50, 5.0
SECONDS = float(os.environ.get("FLEET_SECONDS", "12"))


def _report(label: str, run: Any) -> None:
    from tests import fleet

    print(
        f"  {label}: {run.polls} polls ({run.polls / run.seconds:.0f}/s) answered by "
        f"{len(run.answered_by)} processes, statuses {dict(run.statuses)}"
    )
    for key in fleet.COUNTED:
        evaluations = run.evaluations[key]
        processes = len({pid for pid, _, _ in evaluations})
        gaps = ", ".join(f"{gap:.1f}" for gap in run.gaps(key)) or "-"
        print(
            f"    {key}: {len(evaluations)} evaluations by {processes} processes "
            f"(starts apart: {gaps} s; overlapping: {run.overlaps(key)}; "
            f"states seen: {dict(run.states[key])})"
        )


def main() -> None:
    # Imported here: they need Django set up (benchmarks.setup()).
    from tests import fleet
    from tests.test_live_redis import RedisServer

    print(
        f"\nFleet: {WORKERS} uvicorn workers x {POLLERS} pollers x {SECONDS:g} s, "
        f"widgets with cache_ttl={TTL:g}"
    )
    binary = shutil.which("redis-server")
    if binary is None:
        print("  skipped: redis-server is not installed")
        return
    with tempfile.TemporaryDirectory(prefix="smallstack-bench-fleet-") as directory:
        base = Path(directory)
        redis = RedisServer(binary, base).start()
        try:
            runs = {}
            for label, env in (
                ("shared Redis cache", {"REDIS_URL": redis.url}),
                ("per-process cache", {"REDIS_URL": redis.url, "CACHE_URL": "locmem://"}),
            ):
                (base / label).mkdir()
                runs[label] = fleet.run(
                    base / label,
                    workers=WORKERS,
                    pollers=POLLERS,
                    seconds=SECONDS,
                    SMALLSTACK_ACTIVITY="0",
                    **env,
                )
                _report(label, runs[label])
        finally:
            redis.stop()
    shared = max(len(e) for e in runs["shared Redis cache"].evaluations.values())
    limit = int(SECONDS // TTL) + 1
    print(
        f"  target: at most {limit} evaluations per widget with the shared cache: "
        f"{'met' if shared <= limit else 'MISSED'} ({shared})"
    )


if __name__ == "__main__":
    from benchmarks import setup

    setup()
    main()
