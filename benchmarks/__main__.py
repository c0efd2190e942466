"""Run every benchmark: ``python -m benchmarks`` (``make bench``)."""

from benchmarks import setup

setup()

from benchmarks import engine  # noqa: E402

engine.main()

from benchmarks import live  # noqa: E402

live.main()

from benchmarks import api  # noqa: E402

api.main()

from benchmarks import activity  # noqa: E402

activity.main()

from benchmarks import health  # noqa: E402

health.main()

from benchmarks import stall  # noqa: E402

stall.main()

from benchmarks import backups  # noqa: E402

backups.main()

from benchmarks import users  # noqa: E402

users.main()

from benchmarks import fleet  # noqa: E402

fleet.main()
