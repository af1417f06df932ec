"""AlpacaEval instructions (805, CC BY-NC 4.0 data): benign requests, used for utility anchors
and over-refusal. Only the instructions are used (the file's outputs are placeholders)."""

from harness.benchmark import Benchmark


class AlpacaEval(Benchmark):
    name = "alpaca_eval"
    file = "utility/alpaca_eval_example_outputs.json"
    hub_id = "tatsu-lab/alpaca_eval"
    hub_split = "eval"
    label = "benign"
    fields = {"prompt": ("instruction",), "category": ("dataset",)}
