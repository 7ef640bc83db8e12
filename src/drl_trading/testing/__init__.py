"""Support for the tests and benchmarks that drive the whole system from outside.

Running the services as `drl-trading serve` processes (`service_processes`), isolating one run on
the shared local stack (`shared_stack`), the tiny always-promoted training run both set up and a
configuration file that trains in seconds (`tiny_training`), the command line in a process of its
own (`cli_process`), a user's bar file as pandas writes it (`pandas_csv`), the online/offline
feature comparison (`feature_parity`) and the promotion gate's calibration over many datasets
(`gate_calibration`). It lives in the package, not in ``tests/``, so that
``benchmarks/`` can use it without importing the test suite; nothing in the services imports it: it
composes the system as a user would, from above `drl_trading.app`.
"""
