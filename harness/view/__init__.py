"""The results browser: a static site over run folders (see `python -m harness view --help`)."""
