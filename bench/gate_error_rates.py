"""How often does `evalkit compare`'s gate fail when it should not? Two simulations on the shipped tasks.

1. **False alarms.** Two equally good models on the five shipped tasks, 14 compared rows (imdb and
   sst2 accuracy and F1, xsum ROUGE-1/2/L/Lsum, wmt21-de-en BLEU and chrF, wikitext2's four
   perplexity figures). Each simulated run picks, for every real document, one of a fixed set of
   possible outputs with fixed per-document probabilities (right or wrong for a classification;
   noisy copies of the reference for a generation; noisy log-likelihoods for perplexity), drawn
   independently for baseline and candidate, so neither model is better. Any failing row is a false alarm.
2. **The tolerance boundary.** The candidate is worse than the baseline by exactly the tolerance:
   sst2 accuracy (872 documents) 0.02 lower in expectation, tested with `--tolerance accuracy=0.02`.
   A failure says "worse than the tolerance", which is wrong.

The metrics, the paired tests, the adjustment and the verdicts are evalkit's own (`gate.py`); only the
model outputs are simulated. `--rule old` applies the rule of evalkit before the gate was changed
(a row fails when its raw p < alpha and its estimate is worse than the tolerance).

    .venv/bin/python -m bench.gate_error_rates                         # 300 comparisons each, a few minutes
    .venv/bin/python -m bench.gate_error_rates --rule old --comparisons 300
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evalkit.analysis.gate import MetricComparison, Tolerance, compare_scorers, decide  # noqa: E402
from evalkit.analysis.paired import paired_bootstrap  # noqa: E402
from evalkit.build import gold_label, references  # noqa: E402
from evalkit.data import load_documents  # noqa: E402
from evalkit.metrics import Scorer, build_scorer  # noqa: E402
from evalkit.tasks import resolve_task  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
RULES = ("holm", "bh", "none", "old")


class Subset(Scorer):
    """One run's scorer: the documents' chosen outputs, as rows of a scorer built over every possible output."""

    def __init__(self, universe: Scorer, per_sample: list[dict[str, Any]], rows: np.ndarray):
        self.universe, self.rows, self._per_sample = universe, rows, per_sample
        self.n, self.names, self.scale = len(rows), universe.names, universe.scale

    def score(self, idx):
        return self.universe.score(self.rows[idx])

    def higher_is_better_for(self, name: str) -> bool:
        return self.universe.higher_is_better_for(name)

    def per_sample(self):
        return [self._per_sample[i] for i in self.rows]


@dataclass
class SimTask:
    """A task's possible outputs: `outputs` per document, and a function drawing one run's choice of them."""

    name: str
    scorers: list[tuple[Scorer, list[dict[str, Any]]]]
    outputs: int
    draw: Callable[[np.random.Generator, bool], np.ndarray]  # (rng, is_candidate) -> output index per document

    def run(self, rng: np.random.Generator, candidate: bool) -> list[Subset]:
        choice = self.draw(rng, candidate)
        rows = np.arange(len(choice)) * self.outputs + choice
        return [Subset(universe, per_sample, rows) for universe, per_sample in self.scorers]


def _scorers(task: str, records: list[dict[str, Any]]) -> list[tuple[Scorer, list[dict[str, Any]]]]:
    spec = resolve_task(task)
    out = []
    for metric in spec.metrics:
        scorer = build_scorer(metric.name, metric.options, records, spec.label_names)
        out.append((scorer, scorer.per_sample()))
    return out


def _docs(task: str, n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    docs = load_documents(resolve_task(task), DATA)
    return [docs[i] for i in sorted(rng.choice(len(docs), min(n, len(docs)), replace=False))]


def classification(task: str, n: int, rng: np.random.Generator, drop: float = 0.0) -> SimTask:
    """Outputs: 0 = the gold label, 1 = the other one; P(right) per document from Beta(4, 1) (mean 0.8).
    The candidate's P(right) is scaled so that its expected accuracy is `drop` lower."""
    spec = resolve_task(task)
    docs = _docs(task, n, rng)
    records = []
    for doc in docs:
        gold = gold_label(spec, doc)
        other = next(label for label in spec.label_names if label != gold)
        records += [{"gold": gold, "prediction": gold}, {"gold": gold, "prediction": other}]
    p_right = rng.beta(4, 1, len(docs))
    p_cand = p_right * (1 - drop / p_right.mean())
    return SimTask(task, _scorers(task, records), 2,
                   lambda r, cand: (r.random(len(docs)) >= (p_cand if cand else p_right)).astype(int))


def generation(task: str, n: int, rng: np.random.Generator, outputs: int = 6) -> SimTask:
    """Outputs: noisy copies of the first reference (each word dropped with a per-document rate)."""
    spec = resolve_task(task)
    docs = _docs(task, n, rng)
    records = []
    for doc in docs:
        refs = references(spec, doc)
        words, rate = refs[0].split(), rng.uniform(0.2, 0.8)
        for _ in range(outputs):
            kept = [w for w in words if rng.random() > rate] or words[:1]
            records.append({"prediction": " ".join(kept), "references": refs})
    return SimTask(task, _scorers(task, records), outputs, lambda r, cand: r.integers(0, outputs, len(docs)))


def perplexity(task: str, n: int, rng: np.random.Generator, outputs: int = 6) -> SimTask:
    """Outputs: log-likelihood = -bytes x a per-document rate x exp(noise), noise sd 0.05."""
    docs = _docs(task, n, rng)
    records = []
    for doc in docs:
        text = doc["page"]
        words, nbytes, rate = len(text.split()), len(text.encode()), rng.uniform(0.7, 1.1)
        for _ in range(outputs):
            ll = -nbytes * rate * float(np.exp(rng.normal(0, 0.05)))
            records.append({"loglikelihood": ll, "words": words, "bytes": nbytes, "tokens": max(1, nbytes // 4)})
    return SimTask(task, _scorers(task, records), outputs, lambda r, cand: r.integers(0, outputs, len(docs)))


def fails(rows: list[MetricComparison], rule: str, alpha: float) -> bool:
    if rule == "old":  # before: raw p < alpha and the estimate worse than the tolerance, no adjustment
        return any(np.isfinite(r.p_value) and r.p_value < alpha and r.delta != 0 and r.worse_by > r.margin for r in rows)
    decide(rows, alpha, rule)
    return any(r.fails for r in rows)


@contextlib.contextmanager
def _no_gc_collect():
    """statsmodels' Holm branch calls gc.collect() on every call: 0.4 s each with torch in the heap, thousands
    of calls here. Skipping it changes no number."""
    collect, gc.collect = gc.collect, lambda *_args: 0
    try:
        yield
    finally:
        gc.collect = collect


def failure_rate(tasks: list[SimTask], comparisons: int, rules: list[str], tolerance: Tolerance, alpha: float,
                 iterations: int, seed: int, metrics: set[str] | None = None) -> dict[str, float]:
    """Share of `comparisons` simulated baseline/candidate pairs in which the gate fails, per rule."""
    rng = np.random.default_rng(seed)
    failed = dict.fromkeys(rules, 0)
    with _no_gc_collect():
        _simulate(tasks, comparisons, rules, tolerance, alpha, iterations, metrics, rng, failed)
    return {rule: count / comparisons for rule, count in failed.items()}


def _simulate(tasks, comparisons, rules, tolerance, alpha, iterations, metrics, rng, failed) -> None:
    for _ in range(comparisons):
        rows: list[MetricComparison] = []
        for task in tasks:
            for b, c in zip(task.run(rng, False), task.run(rng, True)):
                names = [n for n in b.names if metrics is None or n in metrics]
                if names:
                    deltas = paired_bootstrap(b, c, iterations, 1234)  # compare's default seed
                    rows += compare_scorers(task.name, b, c, names, deltas, lambda _name: tolerance)
        for rule in rules:
            failed[rule] += fails(rows, rule, alpha)


def five_tasks(rng: np.random.Generator, n_mc: int, n_gen: int, n_ppl: int) -> list[SimTask]:
    return [classification("imdb", n_mc, rng), classification("sst2", n_mc, rng), generation("xsum", n_gen, rng),
            generation("wmt21-de-en", n_gen, rng), perplexity("wikitext2", n_ppl, rng)]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--comparisons", type=int, default=300)
    p.add_argument("--rule", default="holm,bh,none,old", help=f"comma-separated, of: {', '.join(RULES)}")
    p.add_argument("--docs", default="200,100,40", help="documents per classification, generation, perplexity task")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--iterations", type=int, default=1000, help="paired-bootstrap resamples (compare's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", choices=("false-alarms", "boundary"), help="run one of the two simulations")
    args = p.parse_args(argv)
    rules = [r.strip() for r in args.rule.split(",") if r.strip()]
    if not set(rules) <= set(RULES):
        p.error(f"--rule takes {', '.join(RULES)}")
    n_mc, n_gen, n_ppl = (int(x) for x in args.docs.split(","))
    rng = np.random.default_rng(args.seed)
    if args.only != "boundary":
        start = time.perf_counter()
        tasks = five_tasks(rng, n_mc, n_gen, n_ppl)
        rates = failure_rate(tasks, args.comparisons, rules, Tolerance(), args.alpha, args.iterations, args.seed)
        print(f"false alarms: two equally good models, 5 tasks, 14 rows ({n_mc}/{n_gen}/{n_ppl} documents), "
              f"{args.comparisons} comparisons, alpha {args.alpha:g}, {time.perf_counter() - start:.0f} s")
        for rule, rate in rates.items():
            print(f"  {rule:<5} gate failed {rate:6.1%}")
    if args.only != "false-alarms":
        start = time.perf_counter()
        tasks = [classification("sst2", 872, rng, drop=0.02)]
        rates = failure_rate(tasks, args.comparisons, rules, Tolerance(0.02), args.alpha, args.iterations, args.seed + 1,
                             metrics={"accuracy"})
        print(f"boundary: sst2 accuracy (872 documents) truly 0.02 worse, --tolerance accuracy=0.02, "
              f"{args.comparisons} comparisons, {time.perf_counter() - start:.0f} s")
        for rule, rate in rates.items():
            print(f"  {rule:<5} gate failed {rate:6.1%}")


if __name__ == "__main__":
    main()
