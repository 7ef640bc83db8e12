"""Where the MLflow pyfunc of models registered by drl-trading 0.1.0 lives.

Their logged model code imports ``DrlPolicyModel`` from this path. From 0.2.0 the class is
`drl_trading.policy.mlflow_pyfunc` (inference loads packages without the training package), and
this name keeps those versions loadable by any MLflow client in an environment of 0.2.0 or later
(an environment rebuilt from their requirements pins drl-trading 0.1.0, which has the path).
"""

from drl_trading.policy.mlflow_pyfunc import DrlPolicyModel

__all__ = ["DrlPolicyModel"]
