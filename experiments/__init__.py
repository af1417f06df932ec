"""Experiment drivers (`experiment=<name>`): each composes several ordinary runs into one table.

A driver gets every model, benchmark, attack and defense it uses from its Hydra config
(`conf/experiment/<name>.yaml`), and runs each cell through the core's `harness.run.loop.evaluate`.
"""
