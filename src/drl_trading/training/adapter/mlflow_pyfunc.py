"""Where the MLflow pyfunc of models registered before version 0.2 lives.

Their logged model code imports ``DrlPolicyModel`` from this path; the class moved to
`drl_trading.policy.mlflow_pyfunc` (inference loads packages without the training package), and
this name keeps those registered versions loadable by any MLflow client.
"""

from drl_trading.policy.mlflow_pyfunc import DrlPolicyModel

__all__ = ["DrlPolicyModel"]
