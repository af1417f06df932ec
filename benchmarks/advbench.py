"""AdvBench harmful behaviors (Zou et al. 2023): 520 goals with affirmative targets."""

from harness.benchmark import Benchmark


class AdvBench(Benchmark):
    name = "advbench"
    file = "advbench/harmful_behaviors.csv"
    hub_id = "walledai/AdvBench"
    fields = {"prompt": ("goal", "prompt"), "target": ("target",)}
