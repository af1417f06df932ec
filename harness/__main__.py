"""`python -m harness`: a run from the Hydra config, or an analysis command (`python -m harness report ...`)."""

from harness.cli import main

if __name__ == "__main__":
    main()
