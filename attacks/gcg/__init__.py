"""GCG (Greedy Coordinate Gradient, Zou et al. 2023): adversarial suffixes by token-gradient search.

One concept per module:

- `slot`: a behavior's chat split around the suffix (template before, suffix, template after, target).
- `tokens`: which tokens a suffix may use, and the re-tokenization filter.
- `kv`: key/value caches built from saved per-layer tensors (shared prefixes, subsets of a batch).
- `sampling`: candidates from the token gradient (top-k per position, one swap per candidate).
- `scorer`: the target loss: its gradient w.r.t. the one-hot suffix, and the best candidate of a step.
- `batching`: candidate batch size that halves on out-of-memory.
- `optimizer`: the step loop (early stop, restarts, progress) for one or several behaviors.
- `testcases`: found suffixes with their loss history, stored as JSON lines and reused on re-runs.
- `attack`: the attack plugin (`GCGAttack`) that turns behaviors into requests with the found suffixes.
"""

from attacks.gcg.attack import GCGAttack

__all__ = ["GCGAttack"]
