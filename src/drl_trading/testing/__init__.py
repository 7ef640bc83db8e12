"""Support for the tests and benchmarks that drive the whole system from outside.

Running the services as `drl-trading serve` processes (`service_processes`), isolating one run on
the shared local stack (`shared_stack`) and the tiny always-promoted training run both set up
(`tiny_training`). It lives in the package, not in ``tests/``, so that ``benchmarks/`` can use it
without importing the test suite; nothing in the services imports it: it composes the system as
a user would, from above `drl_trading.app`.
"""
