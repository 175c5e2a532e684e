"""Rating rubrics: YAML files that say what a rater scores, on which scales, in which mode.

A rubric is validated like a task file (`yaml.safe_load`, unknown fields refused, one error line that
names the file and the field). Two rubrics ship with evalkit: `default` (single mode: fluency 1-5,
faithfulness to the source 1-5, a free comment) and `default-pairwise` (pick A, B or tie; the same two
scales per output, optional).

    name: my-rubric
    mode: single | pairwise
    instructions: Read the article, then ...
    preference: Which summary is better overall?      # pairwise only (the question shown)
    comment: true                                     # a free-text comment box
    show_reference: false                             # show the task's reference answer to raters
    scales:
      - name: fluency                                 # the key in ratings files
        label: Fluency                                # what raters see
        question: Is the text fluent English?
        min: 1
        max: 5
        required: true                                # default: true in single mode, false in pairwise
        anchors: {1: Unreadable, 3: Some errors, 5: Flawless}
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import EvalkitError
from ..tasks.loader import _Fields, read_yaml

MODES = ("single", "pairwise")
RUBRICS = Path(__file__).with_name("rubrics")
DEFAULT_RUBRIC = {"single": "default", "pairwise": "default-pairwise"}
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,39}")
_TOP_KEYS = {"name", "mode", "instructions", "preference", "comment", "show_reference", "scales"}
_SCALE_KEYS = {"name", "label", "question", "min", "max", "required", "anchors"}


@dataclass(frozen=True)
class Scale:
    name: str
    label: str
    min: int
    max: int
    required: bool
    question: str = ""
    anchors: tuple[tuple[int, str], ...] = ()

    def allows(self, value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and self.min <= value <= self.max


@dataclass(frozen=True)
class Rubric:
    name: str
    mode: str
    instructions: str
    scales: tuple[Scale, ...]
    preference: str = ""
    comment: bool = True
    show_reference: bool = False
    source_file: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("source_file")
        data["scales"] = [{**s, "anchors": {str(k): v for k, v in s["anchors"]}} for s in data["scales"]]
        return data

    @property
    def hash(self) -> str:
        """A hash of what raters see and what values are allowed (not the file's location)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def scale(self, name: str) -> Scale | None:
        return next((s for s in self.scales if s.name == name), None)


def parse_rubric(raw: Any, where: str) -> Rubric:
    top = _Fields(raw, where, "")
    top.check_keys(_TOP_KEYS)
    name = top.get("name", str, required=True)
    if not _NAME.fullmatch(name):
        top.fail(f"'{name}' is not a rubric name: a letter, then letters, digits, '_' or '-' (40 at most)", "name")
    mode = top.get("mode", str, required=True)
    if mode not in MODES:
        top.fail(f"unknown mode '{mode}' (use one of: {', '.join(MODES)})", "mode")
    preference = top.get("preference", str, "")
    if mode == "single" and preference:
        top.fail("is for pairwise rubrics only (single mode rates one output)", "preference")
    if mode == "pairwise" and not preference:
        preference = "Which output is better?"
    raw_scales = top.get("scales", list, default=[])
    scales = tuple(_parse_scale(_Fields(item, where, f"scales[{i}]"), mode) for i, item in enumerate(raw_scales))
    seen: set[str] = set()
    for scale in scales:
        if scale.name in seen:
            top.fail(f"scale '{scale.name}' is listed twice", "scales")
        seen.add(scale.name)
    comment = top.get("comment", bool, True)
    if mode == "single" and not scales:
        top.fail("a single-mode rubric needs at least one scale", "scales")
    return Rubric(name=name, mode=mode, instructions=top.get("instructions", str, "").strip(), scales=scales,
                  preference=preference, comment=comment, show_reference=top.get("show_reference", bool, False),
                  source_file=where)


def _parse_scale(f: _Fields, mode: str) -> Scale:
    f.check_keys(_SCALE_KEYS)
    name = f.get("name", str, required=True)
    if not _NAME.fullmatch(name):
        f.fail(f"'{name}' is not a scale name: a letter, then letters, digits, '_' or '-'", "name")
    low, high = f.get("min", int, required=True), f.get("max", int, required=True)
    if not 0 <= low < high <= 9:
        f.fail(f"min {low} and max {high} must satisfy 0 <= min < max <= 9 (each value is one key on the keyboard)", "max")
    anchors = []
    for key, text in f.get("anchors", dict, default={}).items():
        value = int(key) if isinstance(key, str) and key.strip().isdigit() else key
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            f.fail(f"anchor {key!r} is not a value on the scale {low}-{high}", "anchors")
        if not isinstance(text, (str, int, float)) or isinstance(text, bool):
            f.fail(f"anchor {value} must be a text", "anchors")
        anchors.append((value, str(text)))
    return Scale(name=name, label=f.get("label", str, name.replace("_", " ").capitalize()), min=low, max=high,
                 required=f.get("required", bool, mode == "single"), question=f.get("question", str, ""),
                 anchors=tuple(sorted(anchors)))


def load_rubric(path: str | os.PathLike | None = None, mode: str = "single") -> Rubric:
    """A rubric file, a shipped rubric's name ('default', 'default-pairwise'), or the default for `mode`."""
    if path is None:
        path = DEFAULT_RUBRIC[mode]
    text = str(path)
    if _NAME.fullmatch(text) and not Path(text).exists():
        shipped = RUBRICS / f"{text}.yaml"
        if not shipped.is_file():
            known = ", ".join(sorted(p.stem for p in RUBRICS.glob("*.yaml")))
            raise EvalkitError(f"no rubric named '{text}' (shipped: {known}); pass a rubric YAML file")
        path = shipped
    return parse_rubric(read_yaml(path, what="rubric file"), str(path))


def check_mode(rubric: Rubric, mode: str) -> None:
    if rubric.mode != mode:
        runs = "one run" if mode == "single" else "two runs"
        raise EvalkitError(f"rubric '{rubric.name}' ({rubric.source_file}) is for {rubric.mode} mode, but {runs} "
                           f"means {mode} mode; pass a {mode} rubric with --rubric (e.g. {DEFAULT_RUBRIC[mode]})")
