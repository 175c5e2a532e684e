"""Summaries of the benchmark's runs: medians per side, ratios evalkit vs lm-eval and vs raw, Markdown."""

from __future__ import annotations

import statistics
from typing import Any

SIDES = ("evalkit", "lm-eval", "raw", "evalkit-vllm", "lm-eval-vllm")


def summarize(runs: list[dict[str, Any]], agreement: dict[tuple[str, str], str] | None = None) -> list[dict[str, Any]]:
    """One row per (model, workload): per-side medians over repeats and the ratios of the medians."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for run in runs:
        row = rows.setdefault((run["model"], run["workload"]), {"model": run["model"], "workload": run["workload"], "sides": {}})
        row["sides"].setdefault(run["side"], []).append(run)
    out = []
    for row in rows.values():
        sides = {}
        for side, side_runs in row["sides"].items():
            infer = [r["infer_s"] for r in side_runs]
            sides[side] = {
                "repeats": len(side_runs),
                "wall_s": statistics.median(r["wall_s"] for r in side_runs),
                "infer_s": statistics.median(infer),
                "infer_s_all": infer,
                # median: glibc's heap retention makes one run's peak differ from the next's by up to ~1 GB
                "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in side_runs),
                "peak_rss_mb_all": [r["peak_rss_mb"] for r in side_runs],
                "score": side_runs[0]["score"],
            }
        tokens = next((r.get("work_tokens") for rs in row["sides"].values() for r in rs if r.get("work_tokens")), None)
        for side in sides.values():
            side["tokens_per_s"] = tokens / side["infer_s"] if tokens and side["infer_s"] else None
        out.append({"model": row["model"], "workload": row["workload"], "tokens": tokens, "sides": sides,
                    **_ratios(sides), "agreement": (agreement or {}).get((row["model"], row["workload"]))})
    return out


def _ratios(sides: dict[str, Any]) -> dict[str, Any]:
    """Speed ratios are throughput ratios (other side's time / evalkit's), so > 1 means evalkit is faster."""
    out: dict[str, Any] = {}
    for mine, other, key in (("evalkit", "lm-eval", "vs_lm_eval"), ("evalkit", "raw", "vs_raw"),
                             ("evalkit-vllm", "evalkit", "vllm_vs_hf"), ("evalkit-vllm", "lm-eval-vllm", "vllm_vs_lm_eval_vllm")):
        ours, theirs = sides.get(mine), sides.get(other)
        if ours and theirs:
            out[key] = {"speed": theirs["infer_s"] / ours["infer_s"], "speed_wall": theirs["wall_s"] / ours["wall_s"],
                        "rss": ours["peak_rss_mb"] / theirs["peak_rss_mb"]}
    return out


def _fmt(value, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def markdown(rows: list[dict[str, Any]], header: str) -> str:
    lines = [header, "",
             "| model | workload | side | model time s | wall s | tokens/s | peak RSS MB | score | evalkit speed-up | evalkit RSS ratio |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        for side in SIDES:
            s = row["sides"].get(side)
            if not s:
                continue
            key = {"lm-eval": "vs_lm_eval", "raw": "vs_raw", "evalkit-vllm": "vllm_vs_hf", "lm-eval-vllm": "vllm_vs_lm_eval_vllm"}.get(side)
            ratio = row.get(key) if key else None
            speed = f"{ratio['speed']:.2f}x (wall {ratio['speed_wall']:.2f}x)" if ratio else ""
            if ratio and side == "evalkit-vllm":
                speed = f"{speed} over evalkit hf-causal"
            rss = f"{ratio['rss']:.2f}" if ratio else ""
            lines.append(f"| {row['model']} | {row['workload']} | {side} | {_fmt(s['infer_s'], '.2f')} | {_fmt(s['wall_s'], '.2f')} "
                         f"| {_fmt(s['tokens_per_s'], ',.0f')} | {s['peak_rss_mb']:,.0f} | {_fmt(s['score'], '.4f')} | {speed} | {rss} |")
    lines += ["", "Speed-up: the other side's model time / evalkit's (medians over repeats; > 1: evalkit is faster); "
              "wall: the same for the whole evaluation call. RSS ratio: evalkit's peak / the other side's (medians). "
              "On the lm-eval-vllm row evalkit means evalkit-vllm; the evalkit-vllm row compares it with evalkit hf-causal."]
    agreements = [f"- {r['model']} {r['workload']}: {r['agreement']}" for r in rows if r.get("agreement")]
    if agreements:
        lines += ["", "Agreement with evalkit:", *agreements]
    return "\n".join(lines) + "\n"
