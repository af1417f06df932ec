"""Which packages the wheel holds (the metadata is in pyproject.toml).

The code under harness/, attacks/, defenses/, benchmarks/ and experiments/, and the Hydra config: conf/ stays
at the top of the checkout and ships inside the package as `harness/conf` (harness/config.py
finds either), so a non-editable install runs without the checkout.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["harness*", "attacks*", "defenses*", "benchmarks*", "experiments*"]), "harness.conf"],
    package_dir={"harness.conf": "conf"},
    package_data={
        "harness.conf": ["*.yaml", "**/*.yaml"],
        "harness.view": ["static/*"],  # the results browser's page, code and vendored Tabulator (no build step)
        "attacks": ["template/*.yaml"],  # the shipped jailbreak templates
    },
)
