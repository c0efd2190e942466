import tests.explorerbroken.no_such_module  # noqa: F401  (the failure autodiscovery must report)
