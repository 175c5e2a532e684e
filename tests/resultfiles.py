"""Build results directories for the leaderboard and report tests from a real run (copied, then edited)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable


def copy_run(src: Path, root: Path, run_id: str, *, created: str | None = None, model: dict[str, Any] | None = None,
             fewshot: Any = "keep", tasks: list[str] | None = None,
             value: Callable[[str, str, float], float] | None = None) -> Path:
    """Copy run `src` to `root/run_id`, optionally changing its time, model, few-shot, tasks or metric values."""
    dest = root / run_id
    shutil.copytree(src, dest)
    results = json.loads((dest / "results.json").read_text())
    results["run_id"] = run_id
    if created:
        results["created"] = created
    if model:
        results["model"] = {**results["model"], **model}
    if fewshot != "keep":
        results["config"]["fewshot"] = fewshot
    if tasks is not None:
        for task in list(results["tasks"]):
            if task not in tasks:
                del results["tasks"][task]
                (dest / f"{task}.samples.jsonl").unlink()
    if value:
        for task, res in results["tasks"].items():
            for metric, m in res["metrics"].items():
                m["value"] = value(task, metric, m["value"])
    (dest / "results.json").write_text(json.dumps(results))
    return dest


def metric_rows(run_dir: Path) -> list[tuple[str, str, dict[str, Any]]]:
    """(task, metric, entry) for every metric in a run's results.json, read directly."""
    results = json.loads((Path(run_dir) / "results.json").read_text())
    return [(task, metric, m) for task, res in results["tasks"].items() for metric, m in res["metrics"].items()]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def edit_samples(path: Path, edit: Callable[[int, dict[str, Any]], None]) -> None:
    rows = read_jsonl(path)
    for i, row in enumerate(rows):
        edit(i, row)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
