"""Result files -> tables and verdicts: leaderboards, reports, paired comparisons and regression gates."""
