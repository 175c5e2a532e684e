"""`python -m evalkit ...` (and `torchrun -m evalkit run ...`)."""

import sys

from .cli.main import main

sys.exit(main())
