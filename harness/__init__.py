"""LLM safety attack-and-evaluation harness: attacks x defenses x models -> judged ASR tables."""

__version__ = "0.1.0"
