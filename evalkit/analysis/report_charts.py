"""Inline SVG bar charts for the HTML report: one bar per model, error bars at the 95% confidence interval
(the given intervals, such as percentile bootstrap ones, or value ± 1.96 stderr).

Drawn in Python so that the charts need no JavaScript and no library. Every label is escaped; no
style attributes are used, so the report's Content-Security-Policy can forbid inline styles.
"""

from __future__ import annotations

import math
from html import escape

from markupsafe import Markup

PALETTE = ["#3b6fd4", "#e07b39", "#3a9d5d", "#c4463a", "#8a5cc2", "#8c6d4f", "#d16ba5", "#6b7b8c", "#b8a729", "#2fa7b8"]
Z95 = 1.959964
LABEL_W, VALUE_W, BAR_W, ROW_H, TOP, BOTTOM = 200, 76, 290, 24, 8, 24


def color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def nice_ticks(low: float, high: float, count: int = 4) -> list[float]:
    """Round tick values from at or below `low` to at or above `high`."""
    span = high - low
    if span <= 0 or not math.isfinite(span):
        return [low]
    raw = span / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first, last = math.floor(low / step + 1e-9) * step, math.ceil(high / step - 1e-9) * step
    return [round(first + i * step, 12) for i in range(round((last - first) / step) + 1)]


def short_number(x: float) -> str:
    if x == 0:
        return "0"
    if abs(x) >= 1e5:
        return f"{x:.3g}"
    return f"{x:.4g}"


def bar_chart(title: str, labels: list[str], values: list[float], stderrs: list[float], colors: list[str],
              intervals: list[tuple[float, float] | None] | None = None) -> Markup:
    """Horizontal bars with 95% CI whiskers; a NaN value draws a '—' row without a bar.

    intervals: each bar's (low, high), e.g. a percentile bootstrap interval; default value ± 1.96 stderr."""
    floor = 0.0 if all(v >= 0 for v in values if _finite(v)) else -math.inf  # a CI of a non-negative metric stops at 0
    if intervals is None:
        intervals = [(max(v - Z95 * s, floor), v + Z95 * s) if _finite(v) and _finite(s) else None
                     for v, s in zip(values, stderrs)]
    lows = [iv[0] if iv else v for v, iv in zip(values, intervals) if _finite(v)]
    highs = [iv[1] if iv else v for v, iv in zip(values, intervals) if _finite(v)]
    low, high = min([0.0, *lows]), max([0.0, *highs])
    if high == low:
        high = low + 1.0
    ticks = nice_ticks(low, high)
    low, high = min(low, ticks[0]), max(high, ticks[-1])

    def x(v: float) -> float:
        return LABEL_W + (v - low) / (high - low) * BAR_W

    width, height = LABEL_W + BAR_W + VALUE_W, TOP + ROW_H * len(labels) + BOTTOM
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
           f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}">', f"<title>{escape(title)}</title>"]
    axis_y = TOP + ROW_H * len(labels)
    for t in ticks:
        out.append(f'<line x1="{x(t):.1f}" y1="{TOP}" x2="{x(t):.1f}" y2="{axis_y}" stroke="#e3e6eb"/>')
        out.append(f'<text x="{x(t):.1f}" y="{axis_y + 15}" text-anchor="middle" font-size="10" fill="#6b7280">'
                   f"{short_number(t)}</text>")
    for i, (label, v, interval, fill) in enumerate(zip(labels, values, intervals, colors)):
        y = TOP + i * ROW_H
        shown = label if len(label) <= 32 else label[:31] + "…"
        out.append(f'<text x="{LABEL_W - 8}" y="{y + ROW_H / 2 + 4:.1f}" text-anchor="end" font-size="11" fill="#1f2937">'
                   f"<title>{escape(label)}</title>{escape(shown)}</text>")
        if not _finite(v):
            out.append(f'<text x="{LABEL_W + 4}" y="{y + ROW_H / 2 + 4:.1f}" font-size="12" fill="#6b7280">—</text>')
            continue
        x0, x1 = sorted((x(0.0), x(v)))
        tip = f"{label}: {short_number(v)}"
        if interval:
            tip += f" (95% CI {short_number(interval[0])} to {short_number(interval[1])})"
        out.append(f'<rect x="{x0:.1f}" y="{y + 4}" width="{max(x1 - x0, 1):.1f}" height="{ROW_H - 8}" rx="2" fill="{fill}">'
                   f"<title>{escape(tip)}</title></rect>")
        if interval and interval[1] > interval[0]:
            lo, hi, mid = x(interval[0]), x(interval[1]), y + ROW_H / 2
            out.append(f'<path d="M{lo:.1f},{mid:.1f}H{hi:.1f}M{lo:.1f},{mid - 5:.1f}V{mid + 5:.1f}'
                       f'M{hi:.1f},{mid - 5:.1f}V{mid + 5:.1f}" stroke="#111827" stroke-width="1.3" fill="none"/>')
        out.append(f'<text x="{LABEL_W + BAR_W + 8}" y="{y + ROW_H / 2 + 4:.1f}" font-size="11" fill="#374151">'
                   f"{short_number(v)}</text>")
    out.append(f'<line x1="{x(0.0):.1f}" y1="{TOP}" x2="{x(0.0):.1f}" y2="{axis_y}" stroke="#9ca3af"/>')
    out.append("</svg>")
    return Markup("".join(out))


def _finite(v: float | None) -> bool:
    return v is not None and math.isfinite(v)
