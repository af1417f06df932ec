"""Explicit safety signals (Li & Kim, ICML 2025): a [CLS] classification token trained with the LM.

- `head`: the dedicated [CLS] input vector and the benign/malicious classifier, saved next to the weights.
- `objective`: the joint loss L_sft + lambda * L_cls for `harness.training.loop.train`, with the CLS
  placed after the evaluated window so no ordinary token ever attends to it.
- `schedule`: when generation re-checks the classification (frequent early, sparse later).
- `decoding`: the generation-time wrapper of the HF engine that steers decoding to a refusal.
- `defense`: the defense plugin (`SafetySignal`): training data, `harden` and `wrap`.
"""

from defenses.safety_signal.defense import SafetySignal

__all__ = ["SafetySignal"]
