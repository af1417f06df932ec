"""Circuit breakers (Zou et al. 2024): representation rerouting, a training defense.

- `objective`: the rerouting loss (ReLU(cos) to the frozen original on harmful states, L2 on retained
  ones, the paper's coefficient schedule) for `harness.training.loop.train`.
- `defense`: the defense plugin (`CircuitBreakers`): deep alignment's data, `harden`.
"""

from defenses.circuit_breakers.defense import CircuitBreakers
from defenses.circuit_breakers.objective import RerouteObjective

__all__ = ["CircuitBreakers", "RerouteObjective"]
