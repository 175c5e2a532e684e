"""Public alias kept stable: `evalkit.leaderboard` is `evalkit.analysis.leaderboard` (a callable module)."""

import sys

from .analysis import leaderboard as _leaderboard

sys.modules[__name__] = _leaderboard
