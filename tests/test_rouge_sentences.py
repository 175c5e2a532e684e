"""rougeLsum's sentences (issue 9 item 15).

The regex splitter broke at "Dr." and "U.S.", and re-split references that were already one
sentence per line: 154 of 1,000 CNN/DailyMail references broke at "Gov." or "Rev.". Sentences now
come from pysbd, and existing line breaks are kept. The values are checked against rouge-score
called directly on the right sentences, written out by hand.
"""

from __future__ import annotations

from importlib.metadata import version

import pytest
from rouge_score import rouge_scorer

from evalkit.metrics import build_scorer
from evalkit.metrics.summarization import split_sentences

# CNN/DailyMail-style highlights: one sentence per line, with the abbreviations that broke them
HIGHLIGHTS = [
    ["Gov. Andrew Cuomo says the state will cover the cost of the repairs .",
     "Rev. Al Sharpton calls for calm after the verdict .",
     "Dr. Smith treated 40 patients at the U.S. Naval Hospital ."],
    ["Rev. Jesse Jackson visits Ferguson on Sunday .",
     "Gov. Jay Nixon declares a state of emergency ."],
]
PREDICTIONS = [
    "The state will cover the repairs, says Gov. Cuomo. Sharpton called for calm, the Rev. said. Dr. Smith treated patients.",
    "Jackson visited Ferguson. Nixon declared an emergency, the office of the Gov. said.",
]
# the sentences a reader sees in each prediction
PREDICTION_SENTENCES = [
    ["The state will cover the repairs, says Gov. Cuomo.", "Sharpton called for calm, the Rev. said.",
     "Dr. Smith treated patients."],
    ["Jackson visited Ferguson.", "Nixon declared an emergency, the office of the Gov. said."],
]


def _rouge_lsum(refs: list[str], preds: list[str]) -> float:
    scorer = rouge_scorer.RougeScorer(["rougeLsum"], use_stemmer=True)
    return 100 * sum(scorer.score(r, p)["rougeLsum"].fmeasure for r, p in zip(refs, preds)) / len(refs)


def test_one_sentence_per_line_references_are_not_split_again_at_gov_and_rev():
    for lines in HIGHLIGHTS:
        assert split_sentences("\n".join(lines)).split("\n") == lines


@pytest.mark.parametrize("text, sentences", [
    ("Dr. Smith went to the U.S. last year. He met Gov. Cuomo there.",
     ["Dr. Smith went to the U.S. last year.", "He met Gov. Cuomo there."]),
    ("Rev. Al Sharpton spoke in Newark, N.J. on Monday. The crowd cheered.",
     ["Rev. Al Sharpton spoke in Newark, N.J. on Monday.", "The crowd cheered."]),
    ("He called the statue 'flattering.' Then he left.", ["He called the statue 'flattering.'", "Then he left."]),
])
def test_single_line_text_is_split_into_real_sentences(text, sentences):
    assert split_sentences(text).split("\n") == sentences


def test_rouge_lsum_equals_rouge_score_on_hand_split_sentences_for_154_of_1000_cnn_dm_style_references():
    records = [{"doc_id": i, "prediction": p, "references": ["\n".join(lines)]}
               for i, (p, lines) in enumerate(zip(PREDICTIONS, HIGHLIGHTS))]
    assert [split_sentences(p).split("\n") for p in PREDICTIONS] == PREDICTION_SENTENCES
    value = build_scorer("rouge", {}, records).point()["rougeLsum"]
    expected = _rouge_lsum(["\n".join(lines) for lines in HIGHLIGHTS], ["\n".join(s) for s in PREDICTION_SENTENCES])
    assert value == pytest.approx(expected, abs=1e-9)
    # the old regex splitter's sentences give another number, so this test tells them apart
    import re

    def regex(text):
        return "\n".join(s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s)

    broken = _rouge_lsum([regex(" ".join(lines)) for lines in HIGHLIGHTS], [regex(p) for p in PREDICTIONS])
    assert broken != pytest.approx(expected, abs=1e-6)


def test_the_result_records_which_splitter_ran():
    records = [{"doc_id": 0, "prediction": "A b. C d.", "references": ["A b. C e."]}]
    extra = build_scorer("rouge", {}, records).extra()
    assert extra["sentence_splitter"].startswith(f"pysbd {version('pysbd')}")
    assert extra["sentence_split"] == "auto"


def test_split_modes():
    text = "First line. Still first.\nSecond line."
    assert split_sentences(text, "auto") == "First line. Still first.\nSecond line."
    assert split_sentences(text, "pysbd") == "First line.\nStill first.\nSecond line."
    assert split_sentences("One. Two.", "newline") == "One. Two."
