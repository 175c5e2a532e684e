"""The HTML report: parsed structure, embedded samples, escaping of planted XSS payloads, the CLI, and a real
headless Chromium that must load it with no console error, no dialog and no request besides the file."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from .cdp import Browser, find_chromium
from .resultfiles import copy_run, edit_samples, metric_rows, read_jsonl

from evalkit.cli import main
from evalkit.analysis.report import build_report

PAYLOAD = "<script>alert(1)</script><img src=x onerror=alert(1)>"
PROMPT_PAYLOAD = "</script><script>alert(2)</script> & <!-- &amp; "
EVIL_MODEL = "<img src=x onerror=alert(3)>"
CHROMIUM = find_chromium()
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (apt-get install chromium); "
                                                              "the browser test of the HTML report is skipped")


@pytest.fixture(scope="module")
def report_root(stories_run, tmp_path_factory):
    """Model A = the real stories run with XSS payloads planted in sst2; model B (named with markup) = A + 1."""
    root = tmp_path_factory.mktemp("report")
    a = copy_run(stories_run[0], root, "run-a", created="2026-01-01T10:00:00+00:00")

    def plant(i, row):
        if i == 0:
            row["prediction"] = PAYLOAD
        if i == 1:
            row["prompt"] = PROMPT_PAYLOAD + row["prompt"]

    edit_samples(a / "sst2.samples.jsonl", plant)
    b = copy_run(stories_run[0], root, "run-b", created="2026-01-01T11:00:00+00:00",
                 model={"spec": f"/ckpt/{EVIL_MODEL}", "location": "/ckpt/b", "sha256": "b" * 64},
                 value=lambda _t, _m, v: v + 1.0)
    return root, a, b


@pytest.fixture(scope="module")
def report_file(report_root, tmp_path_factory):
    path = tmp_path_factory.mktemp("html") / "report.html"
    path.write_text(build_report(report_root[0]), encoding="utf-8")
    return path


class Page(HTMLParser):
    """Every element (tag, attrs, text directly inside it) in document order."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.elements: list[dict] = []
        self.open: list[dict] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        element = {"tag": tag, "attrs": dict(attrs), "text": "", "parents": [e["tag"] for e in self.open]}
        element["classes"] = (element["attrs"].get("class") or "").split()
        self.elements.append(element)
        if tag not in ("meta", "br", "input", "link", "img", "path", "line", "rect"):
            self.open.append(element)

    def handle_endtag(self, tag):
        while self.open and self.open.pop()["tag"] != tag:
            pass

    def handle_data(self, data):
        for element in self.open:
            element["text"] += data

    def find(self, tag, cls=None, **attrs):
        return [e for e in self.elements if e["tag"] == tag and (cls is None or cls in e["classes"])
                and all(e["attrs"].get(k) == v for k, v in attrs.items())]


def _csp_hash(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def test_report_structure(report_root, report_file):
    _root, a, b = report_root
    text = report_file.read_text()
    page = Page(text)
    assert not page.find("link") and not page.find("img") and not page.find("iframe")
    for element in page.elements:
        for attr in ("src", "href", "action"):
            assert element["attrs"].get(attr) in (None,) or element["attrs"][attr].startswith("#"), element
    scripts = page.find("script")
    assert [s["attrs"] for s in scripts] == [{"type": "application/json", "id": "evalkit-data"}, {}]
    styles = page.find("style")
    assert len(styles) == 1
    csp = page.find("meta", **{"http-equiv": "Content-Security-Policy"})[0]["attrs"]["content"]
    assert "default-src 'none'" in csp
    assert f"script-src '{_csp_hash(scripts[1]['text'])}'" in csp and f"style-src '{_csp_hash(styles[0]['text'])}'" in csp
    assert [s["attrs"]["id"] for s in page.find("section")] == ["leaderboard", "charts", "samples", "runs"]

    metrics = {(t, m) for t, m, _ in metric_rows(a)}
    assert len(page.find("svg", "chart")) == len(metrics)
    titles = {e["text"] for e in page.find("title") if "svg" in e["parents"] and e["parents"][-1] == "svg"}
    assert titles == {f"{t} / {m}" for t, m in metrics}
    board = page.find("table", "board")[0]
    rows = [e for e in page.find("tr") if "tbody" in e["parents"] and "table" in e["parents"]][:2]
    names = [e["text"] for e in page.find("th", "model") if "tbody" in e["parents"]]
    assert names == [EVIL_MODEL, "stories260K-hf"]  # B wins 4 of 5 tasks
    assert len(rows) == 2 and all("±" in r["text"] and "95% CI [" in r["text"] for r in rows)
    assert all(m in board["text"] for _t, m in metrics)
    runs = page.find("details", "run")
    assert len(runs) == 2
    for run_dir, details in zip((a, b), runs):
        results = json.loads((run_dir / "results.json").read_text())
        assert results["run_id"] in details["text"]
        assert all(t["hash"] in details["text"] for t in results["config"]["tasks"].values())
        assert results["versions"]["transformers"] in details["text"]


def _embedded(report_file: Path) -> dict:
    page = Page(report_file.read_text())
    return json.loads(page.find("script", type="application/json")[0]["text"])


def test_embedded_samples_match_the_samples_files(report_root, report_file):
    _root, a, _b = report_root
    sets = {(s["run"], s["task"]): s for s in _embedded(report_file)["sets"]}
    assert set(sets) == {(run, task) for run in ("run-a", "run-b") for task, _m, _e in metric_rows(a)}
    sst2 = sets[("run-a", "sst2")]
    records = read_jsonl(a / "sst2.samples.jsonl")
    assert [s["pred"] for s in sst2["samples"]] == [r["prediction"] for r in records]
    assert [s["ok"] for s in sst2["samples"]] == [int(r["scores"]["accuracy"] == 1.0) for r in records]
    assert sst2["samples"][0]["pred"] == PAYLOAD and sst2["samples"][1]["prompt"].startswith(PROMPT_PAYLOAD)
    wmt = sets[("run-a", "wmt21-de-en")]
    assert [s["target"] for s in wmt["samples"]] == [r["references"] for r in read_jsonl(a / "wmt21-de-en.samples.jsonl")]
    assert not wmt["has_correct"] and sst2["has_correct"]
    long_doc = max(read_jsonl(a / "wikitext2.samples.jsonl"), key=lambda r: len(r["prompt"]))
    shown = next(s for s in sets[("run-a", "wikitext2")]["samples"] if s["id"] == long_doc["doc_id"])
    assert len(long_doc["prompt"]) > 4000 and shown["prompt"].startswith(long_doc["prompt"][:4000])
    assert f"{len(long_doc['prompt']) - 4000:,} more characters" in shown["prompt"]


def test_xss_payloads_are_escaped(report_file):
    text = report_file.read_text()
    assert text.count("<script") == 2 and text.count("</script>") == 2
    before_data = text.split('<script type="application/json"')[0]
    assert "alert(1)" not in before_data and "alert(2)" not in before_data  # sample text only in the data block...
    data = text.split('<script type="application/json" id="evalkit-data">')[1].split("</script>")[0]
    assert "<" not in data and ">" not in data and "&" not in data  # ...and the block cannot be closed early
    assert "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e" in data
    assert EVIL_MODEL not in text and "&lt;img src=x onerror=alert(3)&gt;" in text
    assert not Page(text).find("img")


def test_report_cli(report_root, tmp_path, capsys):
    _root, a, _b = report_root
    out = tmp_path / "one-run.html"
    assert main(["report", str(a), "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().err
    page = Page(out.read_text())
    assert len(page.find("details", "run")) == 1 and len(page.find("tr")) > 1
    assert main(["report", str(tmp_path / "empty"), "-o", str(out)]) == 2
    assert main(["report", str(a), "--max-chars", "-1"]) == 2
    err = capsys.readouterr().err
    assert "not found" in err and "--max-chars" in err and "Traceback" not in err


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("Chromium not installed (apt-get install chromium); the browser test of the HTML report is skipped")
    b = Browser(CHROMIUM)
    yield b
    b.close()


READY = "document.documentElement.dataset.ready === '1'"


def _browse(browser, task, model, query="", wrong=False, sort="doc"):
    """Drive the sample browser like a user; return the status line, the cards and any injected elements."""
    script = """(async (task, model, query, wrong, sort) => {
      const fire = (el, type) => el.dispatchEvent(new Event(type));
      document.querySelector(`#sb-tasks button[data-task="${task}"]`).click();
      const m = document.getElementById('sb-model');
      m.value = [...m.options].find(o => o.textContent.startsWith(model + ' (')).value; fire(m, 'change');
      const w = document.getElementById('sb-wrong'); w.checked = wrong; fire(w, 'change');
      const o = document.getElementById('sb-sort'); o.value = sort; fire(o, 'change');
      const s = document.getElementById('sb-search'); s.value = query; fire(s, 'input');
      await new Promise(r => setTimeout(r, 300));
      return {status: document.getElementById('sb-status').textContent,
              cards: [...document.querySelectorAll('#sb-list article')].map(c => ({cls: c.className,
                head: c.querySelector('.head').textContent,
                pred: (c.querySelector('.field.pred pre') || {}).textContent})),
              injected: document.querySelectorAll('#sb-list script, #sb-list img, main img, main iframe').length};
    })"""
    args = ", ".join(json.dumps(v) for v in (task, model, query, wrong, sort))
    return browser.evaluate(f"{script}({args})")


def _count(status: str) -> int:
    found = re.search(r"of (\d+)", status)
    return int(found.group(1)) if found else 0


@needs_chromium
def test_browser_catches_errors_and_requests(browser, tmp_path):
    """The harness itself: a page that fetches, logs an error and alerts must produce problems."""
    bad = tmp_path / "bad.html"
    bad.write_text('<!doctype html><img src="https://cdn.invalid/x.png"><script>console.error("boom");'
                   'alert(1);</script>')
    browser.problems.clear()
    browser.open(bad.as_uri(), "document.readyState === 'complete'")
    browser.evaluate("1")
    found = " | ".join(browser.problems)
    assert "request: https://cdn.invalid/x.png" in found and "console.error: boom" in found and "dialog: alert" in found
    browser.problems.clear()


@needs_chromium
def test_report_in_chromium(browser, report_root, report_file, tmp_path):
    _root, a, _b = report_root
    browser.problems.clear()
    seconds = browser.open(report_file.as_uri(), READY)
    png = browser.screenshot(tmp_path / "report.png")
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 20_000
    assert browser.evaluate("document.querySelectorAll('#sb-tasks button').length") == 5
    assert browser.evaluate("document.querySelectorAll('svg.chart').length") == len(metric_rows(a))

    records = read_jsonl(a / "sst2.samples.jsonl")
    hit = _browse(browser, "sst2", "stories260K-hf", query="alert(1)")
    assert _count(hit["status"]) == 1 and hit["cards"][0]["pred"] == PAYLOAD and hit["injected"] == 0
    query = "movie"
    expected = sum(query in "\n".join([str(r["doc_id"]), r["prompt"], r["prediction"], r["gold"]]).lower() for r in records)
    assert 0 < expected < len(records)
    assert _count(_browse(browser, "sst2", "stories260K-hf", query=query)["status"]) == expected
    wrong = _browse(browser, "sst2", "stories260K-hf", wrong=True)
    assert _count(wrong["status"]) == sum(r["scores"]["accuracy"] == 0 for r in records)
    assert wrong["cards"] and all("wrong" in c["cls"].split() for c in wrong["cards"])
    xsum = read_jsonl(a / "xsum.samples.jsonl")
    lowest = _browse(browser, "xsum", EVIL_MODEL, sort="asc:rouge1")
    assert f"doc {min(xsum, key=lambda r: r['scores']['rouge1'])['doc_id']}" in lowest["cards"][0]["head"]
    assert _count(lowest["status"]) == len(xsum)
    assert browser.problems == [], browser.problems
    assert seconds < 20


@needs_chromium
def test_ten_thousand_samples_stay_fast(browser, report_root, tmp_path):
    _root, a, _b = report_root
    big = copy_run(a, tmp_path, "run-big", tasks=["sst2"])
    base = read_jsonl(big / "sst2.samples.jsonl")
    rows = [{**base[i % len(base)], "doc_id": i} for i in range(10_000)]
    (big / "sst2.samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    start = time.perf_counter()
    out = tmp_path / "big.html"
    out.write_text(build_report(big))
    build_s = time.perf_counter() - start
    browser.problems.clear()
    load_s = browser.open(out.as_uri(), READY)
    assert "of 10000 samples" in browser.evaluate("document.getElementById('sb-status').textContent")
    search_ms = browser.evaluate("""(async () => {
      const input = document.getElementById('sb-search'), status = document.getElementById('sb-status');
      const changed = new Promise(r => new MutationObserver((_, o) => { o.disconnect(); r(); })
        .observe(status, {childList: true, characterData: true, subtree: true}));
      const start = performance.now();
      input.value = 'positive'; input.dispatchEvent(new Event('input'));
      await changed;
      return performance.now() - start - 120;  // minus the typing debounce
    })()""")
    wrong = _browse(browser, "sst2", "stories260K-hf", query="the", wrong=True)
    expected = sum(r["scores"]["accuracy"] == 0 and "the" in "\n".join(
        [str(r["doc_id"]), r["prompt"], r["prediction"], r["gold"]]).lower() for r in rows)
    assert _count(wrong["status"]) == expected and len(wrong["cards"]) == 20
    assert browser.problems == [], browser.problems
    print(f"\n10,000 samples: report {out.stat().st_size / 1e6:.1f} MB built in {build_s:.2f} s, "
          f"Chromium ready in {load_s:.2f} s, a search over all of them in {search_ms:.0f} ms")
    assert load_s < 20 and build_s < 30 and search_ms < 2000


def test_perplexity_intervals_are_percentile_bootstrap_and_never_below_zero(tmp_path):
    """Issue 9 item 10: perplexity's normal CI (value ± 1.96 se) went below zero. Ten documents, one of them far
    harder than the rest (a skewed bootstrap distribution): results.json stores the percentile bootstrap
    interval, recomputed here from the samples by hand, and the report shows it."""
    import numpy as np

    from evalkit.analysis.report_charts import short_number
    from evalkit.tasks import resolve_task

    from .fake_runs import write_run

    rates = [2.0] * 9 + [15.0]
    records = [{"doc_id": i, "loglikelihood": -100 * r, "words": 100, "bytes": 500, "tokens": 130} for i, r in enumerate(rates)]
    run_dir = write_run(tmp_path, "skewed", {"wikitext2": (resolve_task("wikitext2"), records)}, bootstrap_iters=1000)
    entry = json.loads((run_dir / "results.json").read_text())["tasks"]["wikitext2"]["metrics"]["word_perplexity"]
    assert entry["value"] == pytest.approx(np.exp(3.3))
    assert entry["value"] - 1.96 * entry["stderr"] < 0  # the old report's interval
    ll, words = np.array([-100 * r for r in rates]), np.full(10, 100)
    rng = np.random.default_rng(1234)
    draws = []
    for _ in range(1000):
        idx = rng.integers(0, 10, 10)
        draws.append(np.exp(-ll[idx].sum() / words[idx].sum()))
    low, high = np.percentile(draws, [2.5, 97.5])
    assert (entry["ci_low"], entry["ci_high"]) == pytest.approx((low, high), rel=1e-9)
    assert 0 < entry["ci_low"] < entry["value"] < entry["ci_high"] and entry["ci_method"] == "percentile bootstrap, 95%"
    html = build_report(run_dir)
    cells = [e["text"] for e in Page(html).find("span", "ci")]
    assert f"95% bootstrap CI [{entry['ci_low']:.2f}, {entry['ci_high']:.2f}]" in cells
    assert not [c for c in cells if "[-" in c]  # no interval of a non-negative metric goes below zero
    assert f"(95% CI {short_number(entry['ci_low'])} to {short_number(entry['ci_high'])})" in html  # the chart's whisker


def test_closed_form_metrics_keep_a_clipped_normal_interval(tmp_path):
    import numpy as np

    from evalkit.analysis.report import metric_interval

    from .fake_runs import sst2_records, sst2_spec, write_run

    run_dir = write_run(tmp_path, "sst2", {"sst2": (sst2_spec(), sst2_records(np.arange(30) % 3 > 0))}, bootstrap_iters=200)
    metrics = json.loads((run_dir / "results.json").read_text())["tasks"]["sst2"]["metrics"]
    assert "ci_low" not in metrics["accuracy"]  # closed form: no bootstrap, no stored CI
    assert metrics["f1"]["ci_low"] < metrics["f1"]["value"] < metrics["f1"]["ci_high"]
    assert metric_interval(0.02, 0.02, float("nan"), float("nan"), "0-1") == (0.0, pytest.approx(0.0592, abs=1e-4), "normal")
    assert metric_interval(0.99, 0.01, float("nan"), float("nan"), "0-1") == (pytest.approx(0.9704, abs=1e-4), 1.0, "normal")
    assert metric_interval(5.0, 9.0, 2.0, 30.0, "ratio") == (2.0, 30.0, "bootstrap")
