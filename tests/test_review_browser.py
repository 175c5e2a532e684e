"""The whole human-review loop in headless Chromium: open review.html, rate 6 items with the keyboard in
pairwise mode, reload and find nothing lost, export JSON and CSV, `ratings import`, then the leaderboard
and the report show the preference column with its CI. No request, no console error, the XSS payload in
a model output shows as text."""

from __future__ import annotations

import csv
import json
import shutil
import time
from pathlib import Path

import pytest

from evalkit.cli.main import main

from .cdp import Browser, find_chromium
from .reviewruns import PAGE_N, PAGE_SEED, PAYLOAD, pair_runs  # noqa: F401 (fixture)
from .test_report import Page

CHROMIUM = find_chromium()
READY = "document.documentElement.dataset.ready === '1'"
# per item: the keys pressed (scale digits, then the preference) and the preference they mean
PLAN = [("4", "2", "5", "1", "a"), ("b",), ("t",), ("3", "a"), ("a",), ("b",)]


def _wait_file(folder: Path, suffix: str, timeout: float = 20.0) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [p for p in folder.iterdir() if p.suffix == suffix]
        if done:
            time.sleep(0.2)
            return done[0]
        time.sleep(0.1)
    raise TimeoutError(f"no {suffix} file downloaded into {folder}")


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (apt-get install chromium); "
                                             "the browser test of the review page is skipped")
def test_review_loop_in_chromium(pair_runs, tmp_path, capsys):
    root = tmp_path / "runs"
    shutil.copytree(pair_runs[0], root)
    a, b, target = root / "run-a", root / "run-b", pair_runs[3]
    page_file = tmp_path / "review.html"
    assert main(["review", str(a), str(b), "-o", str(page_file), "--n", str(PAGE_N), "--seed", str(PAGE_SEED)]) == 0
    data = json.loads(Page(page_file.read_text()).find("script", type="application/json")[0]["text"])
    items = data["items"]
    assert len(items) == PAGE_N and str(items[0]["doc_id"]) == target

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser = Browser(CHROMIUM)
    try:
        browser.allow_downloads(downloads)
        browser.open(page_file.as_uri(), READY)
        # the payload item comes first: its output is text, and nothing was injected
        shown = browser.evaluate("[...document.querySelectorAll('#rv-item .output pre')].map(p => p.textContent)")
        assert any(text.startswith(PAYLOAD) for text in shown)
        assert browser.evaluate("document.querySelectorAll('#rv-item script, #rv-item img, main img').length") == 0
        browser.evaluate("document.getElementById('rv-rater').focus()")
        browser.type_text("kb-rater")
        browser.press("Escape")
        for keys in PLAN:
            for key in keys:
                browser.press(key)
        count = browser.evaluate("document.getElementById('rv-count').textContent")
        assert count == f"{PAGE_N} of {PAGE_N} rated"
        stored = browser.evaluate(f"localStorage.getItem('evalkit-review:{data['page']['id']}')")

        browser.reload(READY)
        assert browser.evaluate("document.getElementById('rv-count').textContent") == count
        assert browser.evaluate("document.getElementById('rv-rater').value") == "kb-rater"
        assert browser.evaluate(f"localStorage.getItem('evalkit-review:{data['page']['id']}')") == stored
        browser.press("u")  # every item is rated: the page says so instead of moving
        assert "Every item is rated" in browser.evaluate("document.getElementById('rv-status').textContent")
        # walk back to the first item with the keyboard: its choice and scale values are still shown
        for _ in range(PAGE_N):
            browser.press("ArrowLeft")
        first = browser.evaluate("""({pick: document.querySelector('.choice button.on').dataset.pick,
            values: [...document.querySelectorAll('.values button.on')].map(b => b.textContent)})""")
        assert first == {"pick": "A", "values": ["4", "2", "5", "1"]}

        browser.evaluate("document.getElementById('rv-export-json').click()")
        exported = json.loads(_wait_file(downloads, ".json").read_text())
        browser.evaluate("document.getElementById('rv-export-csv').click()")
        csv_file = _wait_file(downloads, ".csv")
        assert "Exported 6 ratings" in browser.evaluate("document.getElementById('rv-status').textContent")
        assert browser.problems == [], browser.problems
    finally:
        browser.close()

    ratings = exported["ratings"]
    assert exported["format"] == "evalkit-ratings" and len(ratings) == PAGE_N
    picks = {"a": "A", "b": "B", "t": "tie"}
    for item, keys, rating in zip(items, PLAN, ratings):
        assert rating["rater"] == "kb-rater" and rating["doc_id"] == item["doc_id"] and rating["content_hash"] == item["hash"]
        assert rating["sides"] == {o["side"]: o["run"] for o in item["outputs"]} and rating["preference"] == picks[keys[-1]]
        assert rating["time"].endswith("Z") and rating["mode"] == "pairwise"
    assert ratings[0]["scores"] == {"A": {"fluency": 4, "faithfulness": 2}, "B": {"fluency": 5, "faithfulness": 1}}
    assert ratings[3]["scores"] == {"A": {"fluency": 3}}
    rows = list(csv.DictReader(csv_file.open()))
    assert [r["preference"] for r in rows] == [r["preference"] for r in ratings] and rows[0]["B.faithfulness"] == "1"

    json_file = tmp_path / "ratings.json"
    json_file.write_text(json.dumps(exported))
    assert main(["ratings", "import", str(json_file), "--into", str(a), "--into", str(b)]) == 0
    assert "6 ratings attached" in capsys.readouterr().out
    assert main(["ratings", "import", str(csv_file), "--into", str(a), "--into", str(b)]) == 2  # the same ratings again
    assert "duplicate" in capsys.readouterr().err
    assert main(["ratings", "import", str(csv_file), "--into", str(a), "--into", str(b), "--replace"]) == 0
    capsys.readouterr()

    pref = json.loads((a / "results.json").read_text())["human"]["tasks"]["xsum"]["preference"]
    wins = sum(r["preferred_run"] == "run-a" for r in ratings)
    ties = sum(r["preference"] == "tie" for r in ratings)
    assert pref["value"] == pytest.approx((wins + ties / 2) / PAGE_N)
    interval = f"[{pref['ci_low']:.4f}, {pref['ci_high']:.4f}]"

    assert main(["leaderboard", str(root)]) == 0
    board = capsys.readouterr().out
    assert "xsum/human:preference" in board and f"{pref['value']:.4f} {interval}" in board
    report = tmp_path / "report.html"
    assert main(["report", str(root), "-o", str(report)]) == 0
    page = Page(report.read_text())
    header = [e["text"] for e in page.find("th")]
    assert any(h.startswith("human:preference") for h in header)
    cells = [e["text"] for e in page.find("td", "num")]
    assert any(f"95% Wilson CI {interval}" in c for c in cells)
    assert page.find("section", id="human") and "Kendall" in page.find("section", id="human")[0]["text"]
