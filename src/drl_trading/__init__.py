"""drl-trading: from raw OHLCV to a trained, registered, backtested DRL policy, and live trading.

The package is organised as one shared kernel (`common`), the strategy SDK (`strategy`) and one
subpackage per service (`ingest`, `preprocess`, `training`, `inference`, `execution`), each in the
hexagonal layout of the architecture document: `core` (ports + logic, no I/O imports), `adapter`
(one module per technology) and `application` (settings + bootstrap).
"""

__version__ = "0.1.0"
