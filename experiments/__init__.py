"""Experiment drivers (`experiment=<name>`): each composes several ordinary runs into one table."""
