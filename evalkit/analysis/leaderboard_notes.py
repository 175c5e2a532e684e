"""The notes under a leaderboard: documents per task, rows that are not like for like, runs set aside,
and task configs that differ between rows. Each takes the tidy frame (leaderboard.py) and returns text."""

from __future__ import annotations

from typing import Any

import pandas as pd


def set_aside_notes(df: pd.DataFrame, shown: pd.DataFrame) -> list[str]:
    """Runs left out because their setup differs from the one shown (e.g. a newer smoke run)."""
    notes = []
    used = shown.drop_duplicates(["model", "task"]).set_index(["model", "task"])
    for (model, task), group in df.drop_duplicates(["model", "task", "run_id"]).groupby(["model", "task"], sort=True):
        kept = used.loc[(model, task)]
        other = group[group["setup"] != kept["setup"]]
        if len(other):
            newer = other[other["created"] > kept["created"]]
            which = f"{len(newer)} newer " if len(newer) else ""
            notes.append(f"Note: {model} / {task}: {which}run(s) of another setup set aside ({_setups(other)}); "
                         f"shown: the run with n={_int(kept['n'])}, dtype {kept['dtype']} (--all shows every run).")
    return notes


def _int(value: Any) -> str:
    return "?" if pd.isna(value) else str(int(value))


def _setups(runs: pd.DataFrame) -> str:
    return "; ".join(f"n={_int(r.n)}, dtype {r.dtype}, limit {r.limit if not pd.isna(r.limit) else 'none'}"
                     for r in runs.itertuples(index=False))


def documents_note(shown: pd.DataFrame) -> str:
    """n per task when every row of it has the same; cells carry (n=...) where a column mixes them."""
    per_task = shown.drop_duplicates(["model", "task", "run_id"]).groupby("task", sort=True)["n"]
    uniform = [f"{task} {_int(ns.iloc[0])}" for task, ns in per_task if ns.nunique(dropna=False) == 1]
    mixed = [task for task, ns in per_task if ns.nunique(dropna=False) > 1]
    parts = [f"Documents per task (n): {', '.join(uniform)}."] if uniform else []
    if mixed:
        parts.append(f"{', '.join(mixed)}: n differs between rows, shown as (n=...) in the cells.")
    return " ".join(parts)


def setup_warnings(shown: pd.DataFrame) -> list[str]:
    """One warning per task whose rows differ in documents, dtype or data: not like for like."""
    warnings = []
    for task, group in shown.drop_duplicates(["model", "task", "run_id"]).groupby("task", sort=True):
        parts = []
        for column, name in (("n", "n"), ("limit", "limit"), ("dtype", "dtype"), ("data_sha256", "data sha256")):
            distinct = list(dict.fromkeys(str(_int(v) if column in ("n", "limit") and not pd.isna(v) else v)
                                          for v in group[column] if not pd.isna(v)))
            if len(distinct) > 1:
                parts.append(f"{name} {' / '.join(distinct)}")
        if parts:
            warnings.append(f"Warning: {task} rows are not like for like ({'; '.join(parts)}); "
                            "a difference between them may come from the setup, not the model.")
    return warnings


def config_warnings(df: pd.DataFrame) -> list[str]:
    """One warning per task whose rows come from different task configs (prompt, data, metrics...)."""
    warnings = []
    for task, configs in df.groupby("task", sort=True)["task_config"]:
        distinct = list(dict.fromkeys(configs.dropna()))
        if len(distinct) > 1:
            warnings.append(f"Warning: {task} was run with {len(distinct)} different task configs "
                            f"({', '.join(c[:8] for c in distinct)}); its scores are not comparable across rows.")
    return warnings
