"""`python -m ram_model.cli`: the same as the `ram-annotate` console script."""
import sys

from ram_model.cli.main import main

sys.exit(main())
