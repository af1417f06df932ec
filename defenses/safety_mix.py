"""Safety data mixing (Qi et al. 2024; Bianchi et al. 2024): a defense of the fine-tuning API.

The provider mixes its own safety anchors (harmful request -> refusal, defenses/safety_anchors.py)
into every user's data and trains with plain SFT. It is the control for
defense=constrained_sft_anchored: the same anchors, without the constrained objective.
Like constrained_sft it does not change the model by itself.
"""

from __future__ import annotations

from typing import Annotated

from defenses.safety_anchors import SafetyAnchors
from harness.defense import Defense
from harness.settings import Ref, Settings
from harness.training.loop import Example


class SafetyMixSettings(Settings):
    anchors: Annotated[SafetyAnchors, Ref]


class SafetyMix(Defense):
    name = "safety_mix"
    Settings = SafetyMixSettings

    def fine_tuning_data(self, examples: list[Example]) -> list[Example]:
        return self.anchors.mix(examples)
