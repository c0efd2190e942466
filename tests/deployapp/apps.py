from django.apps import AppConfig


class DeployAppConfig(AppConfig):
    """Widgets for the gunicorn and nginx tests (tests/test_deploy_*.py).

    - "Deploy" group: ``deploy-worker`` shows the pid of the process that evaluated it (a
      socket's snapshot of it names the worker serving that socket); ``deploy-value`` shows the
      text of the file named by ``SMALLSTACK_DEPLOY_VALUE_FILE`` (tests change it, then refresh).
    - "Deploy slow" group, off the main dashboard: ``deploy-slow`` answers after
      ``SMALLSTACK_DEPLOY_SLOW_SECONDS`` (3), a request that is still in flight at a SIGTERM.
    """

    name = "tests.deployapp"
    label = "deployapp"

    def ready(self) -> None:
        from smallstack import dashboard
        from tests.deployapp.widgets import FileValue, Slow, WorkerPid

        dashboard.register(WorkerPid(), group="Deploy")
        dashboard.register(FileValue(), group="Deploy")
        dashboard.register(Slow(), group="Deploy slow")
