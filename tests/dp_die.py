"""torchrun entry for the dying-rank test: rank 1 exits abruptly on its 3rd scoring batch, then evalkit runs as usual.

    torchrun --nproc-per-node 2 tests/dp_die.py run --model ... --tasks sst2 ...
"""

import os
import sys

if __name__ == "__main__":
    if os.environ.get("RANK") == "1":
        from evalkit.adapters.hf import scoring

        real = scoring._score_batch
        calls = {"n": 0}

        def dying(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 3:
                os._exit(3)  # no cleanup, no message: like a process killed by the OOM killer
            return real(*args, **kwargs)

        scoring._score_batch = dying
    from evalkit.cli.main import main

    sys.exit(main(sys.argv[1:]))
