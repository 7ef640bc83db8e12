"""drl-trading: from raw OHLCV to a trained, registered, backtested DRL policy, and live trading.

The package plan (docs/architecture.md, checked by import-linter): the kernel (`common`), the
strategy SDK (`strategy`), the shared `policy` and `evaluation` packages, one subpackage per
service (`ingest`, `preprocess`, `training`, `inference`, `execution`), each a `core` (settings,
ports and logic, no I/O) and its `adapter`s (one module per technology), the composition (`app`)
and the command line (`cli`).
"""

__version__ = "0.2.0"

import os as _os

# Feast sets PROMETHEUS_MULTIPROC_DIR (to a feast_metrics_* temporary folder) on import, which
# switches every prometheus_client metric created afterwards to memory-mapped files: an mmap
# write per update on the services' hot path, and a folder left behind per process. Each service
# exports its own /metrics, so fix the value class now, before Feast is imported (lazily, later),
# and drop the variables a parent process that imported Feast passed on. An operator's own
# multiprocess set-up (any other folder) is kept.
for _name in ("PROMETHEUS_MULTIPROC_DIR", "PROMETHEUS_MULTIPROCESS_DIR"):
    if "feast_metrics_" in _os.environ.get(_name, ""):
        del _os.environ[_name]
import prometheus_client.values as _prometheus_values  # noqa: E402, F401
