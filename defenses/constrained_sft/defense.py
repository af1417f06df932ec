"""Token-wise constrained fine-tuning (Qi et al. 2025): a defense of the fine-tuning API.

Threat model: the provider runs the fine-tuning job on user-supplied data. Under this defense
every fine-tuning attack (attack=finetune ...) is trained with the constrained objective
(defenses/constrained_sft/objective.py) instead of plain SFT, anchored to the model before fine-tuning.
It does not change the model by itself: with a prompt-level attack it is the same as
defense=none.

`anchors` (optional, off by default as in the paper) also mixes the provider's safety anchors
(defenses/safety_anchors.py) into the user's data; under this objective they pin the refusal
prefix against leakage from the attacker's later tokens (see defense=constrained_sft_anchored,
and defense=safety_mix for the same anchors under plain SFT).
"""

from __future__ import annotations

from typing import Annotated, Any

from defenses.constrained_sft.objective import Betas, ConstrainedObjective
from defenses.safety_anchors import SafetyAnchors
from harness.defense import Defense
from harness.settings import Ref, Settings
from harness.training.loop import Example, Objective


class ConstrainedSFTSettings(Settings):
    betas: Betas = Betas()
    anchors: Annotated[SafetyAnchors | None, Ref] = None


class ConstrainedSFT(Defense):
    name = "constrained_sft"
    Settings = ConstrainedSFTSettings

    def __init__(self, *args: Any, **values: Any) -> None:
        super().__init__(*args, **values)
        if self.anchors is not None:
            self.name = "constrained_sft_anchored"

    def fine_tuning_objective(self) -> Objective:
        return ConstrainedObjective(self.betas)

    def fine_tuning_data(self, examples: list[Example]) -> list[Example]:
        return self.anchors.mix(examples) if self.anchors else examples
