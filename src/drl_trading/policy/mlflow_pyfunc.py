"""The registered model as an MLflow pyfunc, so that any MLflow client or ``mlflow models serve``
can load ``models:/NAME@champion`` and act with it, without knowing about model packages.

The pyfunc only wraps the package: it carries the package folder as its ``package`` artifact and
delegates to `Predictor`, which is imported when the model is loaded (not when it is logged), so
logging needs neither torch nor a loadable policy. `MODEL_CODE` is what the MLflow registry
adapter logs for it (the composition hands it over: the kernel adapter cannot import this
package).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from mlflow.pyfunc.model import PythonModel, PythonModelContext

from drl_trading.common.model_registry import PACKAGE_ARTIFACT

if TYPE_CHECKING:
    # Only for the type checker. MLflow reads ``predict``'s annotations to infer a signature and
    # to validate inputs, and refuses a dict of tensors there; with these names unresolvable at
    # run time it skips that step and the explicit tensor signature of the logged model applies.
    import numpy as np
    import pandas as pd  # type: ignore[import-untyped]
    from numpy.typing import NDArray

    PolicyInput = Mapping[str, NDArray[Any]]

OUTPUT_COLUMNS = ("target_position", "action", "confidence")

MODEL_CODE = """\
import mlflow.models

from drl_trading.policy.mlflow_pyfunc import DrlPolicyModel

mlflow.models.set_model(DrlPolicyModel())
"""
"""The pyfunc as MLflow logs it, "models from code": loading a version runs these lines instead of
unpickling an instance, which MLflow warns about and may refuse
(MLFLOW_ALLOW_PICKLE_DESERIALIZATION) in a serving environment. Versions logged with it import
this module, so it stays importable at this path (`drl_trading.training.adapter.mlflow_pyfunc`
keeps the path that drl-trading 0.1.0 logged)."""


class _PolicyOutput(Protocol):
    target_position: NDArray[np.float64]
    action: NDArray[np.int64]
    confidence: NDArray[np.float64]


class _Policy(Protocol):
    def predict(self, features: NDArray[np.float32], agent_state: NDArray[np.float32]) -> Any:
        """Returns a `_PolicyOutput`."""


class DrlPolicyModel(PythonModel):
    # MLflow's own opt-out (used by its ChatModel) from wrapping ``predict`` for type-hint
    # validation; without it every import warns that ``predict`` lacks supported hints.
    _skip_type_hint_validation = True

    def __init__(self) -> None:
        self.predictor: _Policy | None = None

    def load_context(self, context: PythonModelContext) -> None:
        from drl_trading.policy.predictor import Predictor

        self.predictor = Predictor.load(Path(context.artifacts[PACKAGE_ARTIFACT]))

    def predict(
        self,
        context: PythonModelContext | None,
        model_input: PolicyInput,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        import numpy as np
        import pandas as pd  # type: ignore[import-untyped]

        if self.predictor is None:
            raise RuntimeError("DrlPolicyModel.predict called before load_context")
        features, agent_state = _policy_arrays(model_input)
        out: _PolicyOutput = self.predictor.predict(features, agent_state)
        return pd.DataFrame(
            {
                "target_position": np.asarray(out.target_position, dtype=np.float64),
                "action": np.asarray(out.action, dtype=np.int64),
                "confidence": np.asarray(out.confidence, dtype=np.float64),
            }
        )


def _policy_arrays(
    model_input: PolicyInput,
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """A single unbatched sample is accepted too, since direct callers often act on one bar."""
    import numpy as np

    if not isinstance(model_input, Mapping) or not {"features", "agent_state"} <= set(model_input):
        raise TypeError(
            "model input must be a mapping with 'features' (batch, window, n_features) and "
            f"'agent_state' (batch, 3) arrays, got {type(model_input).__name__}"
        )
    features = np.asarray(model_input["features"], dtype=np.float32)
    agent_state = np.asarray(model_input["agent_state"], dtype=np.float32)
    if features.ndim == 2:
        features = features[np.newaxis]
    if agent_state.ndim == 1:
        agent_state = agent_state[np.newaxis]
    if features.ndim != 3 or agent_state.ndim != 2 or len(features) != len(agent_state):
        raise ValueError(
            "expected features (batch, window, n_features) and agent_state (batch, 3) with the "
            f"same batch size, got {features.shape} and {agent_state.shape}"
        )
    return features, agent_state
