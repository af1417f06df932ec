"""No defense: the model as its card describes it."""

from harness.defense import Defense


class NoDefense(Defense):
    name = "none"
