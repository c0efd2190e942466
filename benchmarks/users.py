"""The Users card's figures: one aggregate query against one ``acount()`` per figure.

``python -m benchmarks.users`` (part of ``make bench``) fills a throwaway SQLite database with
``BENCH_USERS`` accounts (default 100,000; 90 % active, 1 % staff, joined over 900 days, signed
in over 60 days), checks that both ways give the same figures, then times each
``BENCH_REPEATS`` times (default 15) in one event loop, interleaved. Target: the single query
is faster than the five counts.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _child() -> None:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.utils import timezone

    from smallstack.users.figures import acount_users

    call_command("migrate", verbosity=0)
    user_model = get_user_model()
    count = int(os.environ.get("BENCH_USERS", "100000"))
    repeats = int(os.environ.get("BENCH_REPEATS", "15"))
    rng = random.Random(1)
    now = timezone.now()
    user_model.objects.bulk_create(
        [
            user_model(
                username=f"user{i}",
                password="!",
                is_active=rng.random() < 0.9,
                is_staff=rng.random() < 0.01,
                date_joined=now - timedelta(days=rng.uniform(0, 900)),
                last_login=now - timedelta(hours=rng.uniform(0, 24 * 60)),
            )
            for i in range(count)
        ],
        batch_size=5000,
    )

    async def separate() -> tuple[int, ...]:
        users = user_model.objects
        return (
            await users.filter(is_active=True).acount(),
            await users.filter(date_joined__gte=now - timedelta(days=30)).acount(),
            await users.filter(last_login__gte=now - timedelta(hours=24)).acount(),
            await users.filter(is_staff=True, is_active=True).acount(),
            await users.acount(),
        )

    async def single() -> tuple[int, ...]:
        f = await acount_users(user_model, new_days=30, signed_in_hours=24, now=now)
        return (f.active, f.new or 0, f.signed_in or 0, f.staff or 0, f.total)

    async def run() -> dict[str, list[float]]:
        assert await separate() == await single(), "the two ways disagree"
        times: dict[str, list[float]] = {"five acount() calls": [], "one aaggregate()": []}
        for _ in range(repeats):
            for name, way in (("five acount() calls", separate), ("one aaggregate()", single)):
                started = time.perf_counter()
                await way()
                times[name].append((time.perf_counter() - started) * 1000)
        return times

    times = asyncio.run(run())
    print(f"\nUsers card figures over {count:,} accounts (SQLite, {repeats} runs each):")
    for name, values in times.items():
        print(
            f"  {name:<20} median {statistics.median(values):6.1f} ms   min {min(values):6.1f} ms"
        )
    ratio = statistics.median(times["one aaggregate()"]) / statistics.median(
        times["five acount() calls"]
    )
    print(f"  one query / five: {ratio:.2f}x (target < 1: {'met' if ratio < 1 else 'missed'})")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="smallstack-bench-users-") as data_dir:
        environ = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "SECRET_KEY": "benchmark-only",
            "SMALLSTACK_DATA_DIR": data_dir,
            "SMALLSTACK_ACTIVITY": "0",
        }
        environ.pop("DATABASE_URL", None)
        subprocess.run(
            [sys.executable, "-m", "benchmarks.users", "--child"], env=environ, cwd=ROOT, check=True
        )


if __name__ == "__main__":
    if "--child" in sys.argv:
        _child()
    else:
        main()
