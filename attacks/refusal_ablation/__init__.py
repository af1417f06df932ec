"""Refusal-direction ablation (Arditi et al. 2024, "Refusal in language models is mediated by a single direction").

- `direction`: activations at post-instruction positions, candidate directions per layer and position,
  refusal scores, the selection on held-out training-side prompts.
- `attack`: the attack plugin (`RefusalAblationAttack`): the cached direction, then the model with it
  ablated (hooks: harness.model.ablated.AblatedModel; or orthogonalised weights, a folder any engine loads).
"""

from attacks.refusal_ablation.attack import RefusalAblationAttack

__all__ = ["RefusalAblationAttack"]
