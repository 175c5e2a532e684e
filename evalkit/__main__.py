"""`python -m evalkit ...` (and `torchrun -m evalkit run ...`).

The guard matters: vLLM and torch start worker processes with the spawn method, which imports
this module again in each child (as __mp_main__); only the real main may run the CLI.
"""

import sys

from .cli.main import main

if __name__ == "__main__":
    sys.exit(main())
