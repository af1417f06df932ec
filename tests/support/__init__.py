"""Helpers the tests share beyond conftest: a loopback fault server, a distributed-training worker."""
