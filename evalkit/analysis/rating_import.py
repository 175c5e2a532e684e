"""`evalkit ratings import FILE... --into RUN`: check exported ratings, then attach them to runs.

Everything is checked before anything is written: the rubric (hash and scales), each rating's content
hash against the runs' logged samples (so outputs that changed since they were rated are refused), and
duplicates (within the files, and against ratings the run already has unless `replace`). Then each
target run gets `RUN/ratings.jsonl` (every rating showing one of its outputs) and a recomputed `human`
block in `results.json`, both written atomically.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from ..errors import EvalkitError
from ..results import find_runs, read_results, read_samples, write_json, write_jsonl
from .compare import RunRef, open_run
from .human import RATINGS_FILE, read_ratings, rubric_ranges_conflict, summarize
from .ratings import check_values, content_hash, describe, identity, read_rating_files, stored
from .rubric import DEFAULT_RUBRIC, Rubric, load_rubric


@dataclass
class Imported:
    run: RunRef
    added: int
    replaced: int
    total: int
    human: dict[str, Any]


def import_ratings(files: Iterable[str | os.PathLike], into: Iterable[str | os.PathLike],
                   rubric: str | os.PathLike | None = None, replace: bool = False) -> list[Imported]:
    files = [Path(f) for f in files]
    ratings = read_rating_files(files)
    chosen = _rubric(ratings, rubric)
    for r in ratings:
        check_values(r, chosen)
    _refuse_duplicates(ratings)
    targets = _unique_targets([open_run(p) for p in into])
    samples = _Samples(targets)
    for r in ratings:
        samples.check_hash(r)
        if not any(run in targets for run in r["sides"].values()):
            raise EvalkitError(f"{r['where']}: rates run(s) {', '.join(r['sides'].values())}, none of which is an "
                               f"--into run ({', '.join(targets)})")
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    plans = []
    for run_id, ref in targets.items():
        new = [stored(r, now) for r in ratings if run_id in r["sides"].values()]
        old = read_ratings(ref.path)
        keys = {identity(r) for r in new}
        clashes = [r for r in old if identity(r) in keys]
        if clashes and not replace:
            raise EvalkitError(f"{ref.path}: already has a rating from {describe(clashes[0])} (imported "
                               f"{clashes[0].get('imported')} from {clashes[0].get('source')}); duplicate ratings are "
                               f"refused: drop them from the file, or pass --replace to replace the earlier ones")
        kept = [r for r in old if identity(r) not in keys] + new
        results = read_results(ref.path)
        rubrics = dict((results.get("human") or {}).get("rubrics") or {})
        rubrics[chosen.hash] = chosen.to_dict()
        conflict = rubric_ranges_conflict(rubrics.values())
        if conflict:
            raise EvalkitError(f"{ref.path}: cannot pool these ratings with the run's earlier ones: {conflict}")
        plans.append((ref, kept, results, rubrics, len(new), len(clashes)))
    done = []
    for ref, kept, results, rubrics, added, replaced in plans:
        write_jsonl(ref.path / RATINGS_FILE, kept)
        results["human"] = summarize(kept, ref.run_id, rubrics)
        write_json(ref.path / "results.json", results)
        done.append(Imported(ref, added, replaced, len(kept), results["human"]))
    return done


def _rubric(ratings: list[dict[str, Any]], path: str | os.PathLike | None) -> Rubric:
    hashes = {(r["rubric"], r["rubric_hash"]) for r in ratings}
    if len(hashes) > 1:
        names = ", ".join(f"'{n}' ({h})" for n, h in sorted(hashes))
        raise EvalkitError(f"the files hold ratings made with {len(hashes)} rubrics ({names}); import each rubric's files separately")
    if path is not None:
        return load_rubric(path)
    name, digest = next(iter(hashes))
    mode = ratings[0]["mode"]
    default = load_rubric(mode=mode)
    if digest != default.hash:
        raise EvalkitError(f"the ratings were made with rubric '{name}' (hash {digest}), not the shipped "
                           f"'{DEFAULT_RUBRIC[mode]}' (hash {default.hash}); pass that rubric's file with --rubric FILE")
    return default


def _refuse_duplicates(ratings: list[dict[str, Any]]) -> None:
    seen: dict[tuple[str, ...], str] = {}
    for r in ratings:
        key = identity(r)
        if key in seen:
            raise EvalkitError(f"duplicate rating: {r['where']} rates the same outputs as {seen[key]}; keep one of them")
        seen[key] = r["where"]


def _unique_targets(refs: list[RunRef]) -> dict[str, RunRef]:
    if not refs:
        raise EvalkitError("pass the run to attach the ratings to with --into RUN_DIR")
    out: dict[str, RunRef] = {}
    for ref in refs:
        if ref.run_id in out and out[ref.run_id].path.resolve() != ref.path.resolve():
            raise EvalkitError(f"two --into runs have the same run_id {ref.run_id} ({out[ref.run_id].path}, {ref.path})")
        out[ref.run_id] = ref
    return out


class _Samples:
    """The logged samples of the target runs and of their sibling runs (for the other side of a pair)."""

    def __init__(self, targets: dict[str, RunRef]):
        self.dirs = {run_id: ref.path for run_id, ref in targets.items()}
        self.parents = list(dict.fromkeys(ref.path.resolve().parent for ref in targets.values()))
        self.records: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        self.searched = False

    def _dir(self, run_id: str, rating: dict[str, Any]) -> Path:
        if run_id not in self.dirs and not self.searched:
            self.searched = True
            for parent in self.parents:
                for run_dir in find_runs(parent):
                    try:
                        self.dirs.setdefault(str(read_results(run_dir)["run_id"]), run_dir)
                    except EvalkitError:
                        continue
        if run_id not in self.dirs:
            raise EvalkitError(f"{rating['where']}: run {run_id} is not among the --into runs nor beside them "
                               f"(in {', '.join(map(str, self.parents))}); pass its directory with --into as well")
        return self.dirs[run_id]

    def record(self, run_id: str, rating: dict[str, Any]) -> dict[str, Any]:
        task = rating["task"]
        if (run_id, task) not in self.records:
            rows = read_samples(self._dir(run_id, rating), task)
            self.records[(run_id, task)] = {str(r.get("doc_id")): r for r in rows}
        found = self.records[(run_id, task)].get(str(rating["doc_id"]))
        if found is None:
            raise EvalkitError(f"{rating['where']}: run {run_id} has no sample for {task} doc {rating['doc_id']}; "
                               f"the ratings belong to other runs")
        return found

    def check_hash(self, rating: dict[str, Any]) -> None:
        sides = sorted(rating["sides"])
        records = [self.record(rating["sides"][s], rating) for s in sides]
        expected = content_hash(rating["task"], rating["doc_id"], records[0].get("prompt") or "",
                                [(rating["sides"][s], rec.get("prediction") or "") for s, rec in zip(sides, records)])
        if expected != rating["content_hash"]:
            raise EvalkitError(f"{rating['where']}: the content hash does not match the runs' samples (the prompt or "
                               f"outputs changed since they were rated); review the current outputs with a new page")
        rating["doc_id"] = records[0].get("doc_id")  # the run's own doc_id (a CSV carries it as text)
