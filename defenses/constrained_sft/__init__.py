"""Token-wise constrained fine-tuning (Qi et al. 2025), a defense of the fine-tuning API.

- `objective`: the constrained per-token loss (`ConstrainedObjective`, its `Betas`).
- `defense`: the defense plugin (`ConstrainedSFT`) that hands the objective to fine-tuning attacks.
"""

from defenses.constrained_sft.defense import ConstrainedSFT
from defenses.constrained_sft.objective import Betas, ConstrainedObjective

__all__ = ["Betas", "ConstrainedObjective", "ConstrainedSFT"]
