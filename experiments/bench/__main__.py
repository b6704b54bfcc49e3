"""`python -m experiments.bench [SECTION ...] [options]`: see `experiments.bench.cli` and `--help`."""

import sys

from experiments.bench.cli import main

sys.exit(main())
