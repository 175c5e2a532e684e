"""Rating records: what the review page exports, how a file of them is read and checked, and the
content hash that ties a rating to the exact text the rater saw.

A rating (one rater, one document, one or two outputs):
    rater, mode ("single" | "pairwise"), rubric, rubric_hash, task, doc_id,
    sides {"A": run_id[, "B": run_id]}    the run whose output was shown on each side (A left, B right)
    content_hash                           sha256 of the task, doc_id, prompt and outputs in side order
    preference "A" | "B" | "tie"           pairwise only
    scores {"A": {scale: value}, "B": {...}}
    comment, time (ISO 8601, when the rater last changed it)
The page exports them as JSON ({"format": "evalkit-ratings", "ratings": [...]}) or CSV (one row per
rating, columns run_A/run_B and A.<scale>/B.<scale>); `read_rating_files` reads both back into the
same records, and `check_values` holds each against its rubric.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any, Iterable

from ..errors import EvalkitError
from .rubric import MODES, Rubric

FORMAT = "evalkit-ratings"
SIDES = ("A", "B")
PREFERENCES = ("A", "B", "tie")
CSV_FIXED = ["rater", "mode", "rubric", "rubric_hash", "task", "doc_id", "run_A", "run_B", "content_hash",
             "preference", "preferred_run", "comment", "time"]


def content_hash(task: str, doc_id: Any, prompt: str, outputs: Iterable[tuple[str, str]]) -> str:
    """sha256 of exactly what a rater saw: task, doc_id, prompt, and (run_id, output) in side order."""
    canonical = json.dumps({"task": task, "doc_id": str(doc_id), "prompt": prompt,
                            "outputs": [[str(run), text] for run, text in outputs]},
                           ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def identity(rating: dict[str, Any]) -> tuple[str, ...]:
    """What makes two ratings duplicates: the same rater, mode, task, document and set of runs."""
    runs = tuple(sorted(rating["sides"].values()))
    return (rating["rater"], rating["mode"], rating["task"], str(rating["doc_id"]), *runs)


def describe(rating: dict[str, Any]) -> str:
    return f"rater '{rating.get('rater')}', {rating.get('task')} doc {rating.get('doc_id')}"


def read_rating_files(paths: Iterable[str | os.PathLike]) -> list[dict[str, Any]]:
    """Every rating in the files (JSON export, JSON list, or CSV export), normalized; `where` says file:index."""
    out: list[dict[str, Any]] = []
    for path in map(Path, paths):
        if not path.is_file():
            raise EvalkitError(f"ratings file not found: {path}")
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as err:
            raise EvalkitError(f"cannot read {path}: {err}") from None
        rows = _csv_rows(text, path) if path.suffix.lower() == ".csv" else _json_rows(text, path)
        if not rows:
            raise EvalkitError(f"{path}: no ratings in the file; export them from the review page first")
        for i, row in enumerate(rows, 1):
            out.append({**normalize(row, f"{path}: rating {i}"), "source": path.name})
    return out


def _json_rows(text: str, path: Path) -> list[Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise EvalkitError(f"{path}: not valid JSON ({err.msg} at line {err.lineno}); pass a .json or .csv export") from None
    if isinstance(data, dict):
        if data.get("format") != FORMAT or not isinstance(data.get("ratings"), list):
            raise EvalkitError(f"{path}: not an evalkit ratings export (expected format '{FORMAT}' and a 'ratings' list)")
        return data["ratings"]
    if isinstance(data, list):
        return data
    raise EvalkitError(f"{path}: expected a ratings export object or a list of ratings, got {type(data).__name__}")


def _csv_rows(text: str, path: Path) -> list[dict[str, Any]]:
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in CSV_FIXED if c not in (reader.fieldnames or [])]
    if missing:
        raise EvalkitError(f"{path}: not an evalkit ratings CSV (missing columns: {', '.join(missing)})")
    rows = []
    for row in reader:
        sides = {s: row[f"run_{s}"] for s in SIDES if row.get(f"run_{s}")}
        scores: dict[str, dict[str, Any]] = {}
        for column, value in row.items():
            side, dot, scale = (column or "").partition(".")
            if dot and side in SIDES and value not in ("", None):
                scores.setdefault(side, {})[scale] = _csv_number(value)
        rows.append({**{k: row[k] for k in CSV_FIXED if not k.startswith("run_")}, "sides": sides, "scores": scores,
                     "preference": row["preference"] or None})
    return rows


def _csv_number(value: str) -> Any:
    try:
        number = float(value)
    except ValueError:
        return value
    return int(number) if number.is_integer() else number


def normalize(row: Any, where: str) -> dict[str, Any]:
    """One rating with its shape checked (not yet its values: see check_values)."""
    if not isinstance(row, dict):
        raise EvalkitError(f"{where}: a rating must be an object, got {type(row).__name__}")

    def text(key: str, required: bool = True) -> str:
        value = row.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                raise EvalkitError(f"{where}: field '{key}' is missing; export the ratings again from the review page")
            return ""
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            raise EvalkitError(f"{where}: field '{key}' must be text, got {type(value).__name__}")
        return str(value).strip()

    mode = text("mode")
    if mode not in MODES:
        raise EvalkitError(f"{where}: unknown mode '{mode}' (use one of: {', '.join(MODES)})")
    sides = row.get("sides")
    wanted = SIDES if mode == "pairwise" else SIDES[:1]
    if not isinstance(sides, dict) or sorted(sides) != sorted(wanted) or not all(isinstance(v, str) and v for v in sides.values()):
        raise EvalkitError(f"{where}: field 'sides' must map {' and '.join(wanted)} to run ids in {mode} mode, got {sides!r}")
    if mode == "pairwise" and sides["A"] == sides["B"]:
        raise EvalkitError(f"{where}: both sides show run {sides['A']}; a pairwise rating compares two runs")
    doc_id = row.get("doc_id")
    if doc_id is None or isinstance(doc_id, (bool, dict, list)) or str(doc_id) == "":
        raise EvalkitError(f"{where}: field 'doc_id' is missing")
    scores = row.get("scores") or {}
    if not isinstance(scores, dict) or not all(isinstance(v, dict) for v in scores.values()):
        raise EvalkitError(f"{where}: field 'scores' must map sides to {{scale: value}}")
    comment = row.get("comment") or ""
    if not isinstance(comment, str):
        raise EvalkitError(f"{where}: field 'comment' must be text")
    rating = {
        "rater": text("rater"), "mode": mode, "rubric": text("rubric"), "rubric_hash": text("rubric_hash"),
        "task": text("task"), "doc_id": doc_id, "sides": dict(sides), "content_hash": text("content_hash"),
        "preference": row.get("preference"), "scores": {str(k): dict(v) for k, v in scores.items()},
        "comment": comment, "time": text("time"),
    }
    rating["where"] = f"{where} ({describe(rating)})"
    return rating


def check_values(rating: dict[str, Any], rubric: Rubric) -> None:
    """The rating fits its rubric: same rubric hash, a valid preference, only known scales, values on them."""
    where = rating["where"]
    if rating["rubric_hash"] != rubric.hash:
        raise EvalkitError(f"{where}: made with rubric '{rating['rubric']}' (hash {rating['rubric_hash']}), not with "
                           f"'{rubric.name}' (hash {rubric.hash}); pass the rubric file it was made with, --rubric FILE")
    if rating["mode"] != rubric.mode:
        raise EvalkitError(f"{where}: a {rating['mode']} rating cannot use the {rubric.mode} rubric '{rubric.name}'")
    preference = rating["preference"]
    if rubric.mode == "pairwise" and preference not in PREFERENCES:
        raise EvalkitError(f"{where}: preference {preference!r} is not one of {', '.join(PREFERENCES)}")
    if rubric.mode == "single" and preference not in (None, ""):
        raise EvalkitError(f"{where}: a single-mode rating has no preference, got {preference!r}")
    for side, values in rating["scores"].items():
        if side not in rating["sides"]:
            raise EvalkitError(f"{where}: scores for side {side!r}, which shows no output (sides: {', '.join(rating['sides'])})")
        for name, value in values.items():
            scale = rubric.scale(name)
            if scale is None:
                raise EvalkitError(f"{where}: scale '{name}' is not in rubric '{rubric.name}' "
                                   f"(it has: {', '.join(s.name for s in rubric.scales) or 'no scales'})")
            if not scale.allows(value):
                raise EvalkitError(f"{where}: {name} = {value!r} on side {side} is off the scale "
                                   f"{scale.min}-{scale.max} of rubric '{rubric.name}'")
    for side in rating["sides"]:
        for scale in rubric.scales:
            if scale.required and scale.name not in rating["scores"].get(side, {}):
                raise EvalkitError(f"{where}: the required scale '{scale.name}' has no value on side {side}")


def stored(rating: dict[str, Any], imported: str) -> dict[str, Any]:
    """The record as written to RUN/ratings.jsonl (with the file it came from and when it was imported)."""
    out = {k: v for k, v in rating.items() if k != "where"}
    if out["mode"] == "single":
        out["preference"] = None
    return {**out, "imported": imported}


def make_rating(page: dict[str, Any], item: dict[str, Any], rater: str, *, preference: str | None = None,
                scores: dict[str, dict[str, int]] | None = None, comment: str = "", time: str | None = None) -> dict[str, Any]:
    """A rating of one item of a review page's data, as the page exports it (for scripted raters and tests)."""
    from datetime import datetime, timezone

    sides = {o["side"]: o["run"] for o in item["outputs"]}
    return {
        "rater": rater, "mode": page["page"]["mode"], "rubric": page["rubric"]["name"],
        "rubric_hash": page["rubric"]["hash"], "page": page["page"]["id"], "task": item["task"],
        "doc_id": item["doc_id"], "sides": sides, "content_hash": item["hash"], "preference": preference,
        "preferred_run": sides.get(preference) if preference in SIDES else None, "scores": scores or {},
        "comment": comment, "time": time or datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def export_document(page: dict[str, Any], rater: str, ratings: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON file the review page's "Export JSON" button writes."""
    from datetime import datetime, timezone

    return {"format": FORMAT, "version": 1, "page": page["page"]["id"],
            "exported": datetime.now(timezone.utc).isoformat(timespec="seconds"), "rater": rater,
            "rubric": page["rubric"], "ratings": ratings}
