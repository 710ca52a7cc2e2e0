"""`python -m explain COMMAND`: batch commands (`evaluate`, `train-small-cnn`, `cache`); see
`explain.evaluation.cli`."""

import sys

from .evaluation.cli import main

if __name__ == "__main__":
    sys.exit(main())
