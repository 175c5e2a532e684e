"""Issue 14, "one line and exit 2, never a traceback": every input of that list, table-driven.

Each case builds its input in a temporary folder and runs the CLI in-process; it must exit 2 with exactly
one line on stderr that names the file, field or flag, and no traceback. Inputs that can be checked
before the model loads are: the model loader is replaced by a failure for those cases. `compare | head`
runs in a subprocess (a real closed pipe).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from evalkit.cli import main

from .conftest import DATA, ROOT, STORIES
from .fake_runs import sst2_records, sst2_spec, write_run
from .hostile_files import (HOSTILE_RESULTS, evil_bin, file_size_limit, gguf_header, make_hostile_results, model_folder,
                            open_folder, unprivileged)

RUN = ["--no-progress", "--no-cache", "--device", "cpu"]
TEMPLATE_TASK = """task: tpl
kind: {kind}
dataset:
  local: {{path: {path}, format: {fmt}, text_field: text}}
doc_to_text: {template}
metrics: [{metric}]
{extra}"""
MC = dict(kind="multiple_choice", metric="accuracy", extra='choices: [negative, positive]\ndoc_to_target: "{{ label }}"\n')
PPL = dict(kind="perplexity", metric="perplexity", extra="")


class Case:
    """Builds one input; `argv` is the command line, `context` wraps the call, `loads_model` allows the model to load."""

    def __init__(self, tmp: Path, monkeypatch):
        self.tmp, self.monkeypatch = tmp, monkeypatch
        self.context: contextlib.AbstractContextManager = contextlib.nullcontext()
        self.loads_model = False

    def task(self, template: str, data: str | bytes, fmt: str = "jsonl", kind: dict | None = None) -> list[str]:
        folder = self.tmp / "data"
        folder.mkdir(exist_ok=True)
        name = "d.jsonl" if fmt == "jsonl" else "d.txt"
        (folder / name).write_bytes(data if isinstance(data, bytes) else data.encode())
        task = self.tmp / "tpl.yaml"
        task.write_text(TEMPLATE_TASK.format(path=name, fmt=fmt, template=json.dumps(template), **(kind or MC)))
        return ["run", "--tasks", str(task), "--data-dir", str(folder), "--model", str(STORIES),
                "--output", str(self.tmp / "out"), *RUN]

    def sst2(self, *flags: str, output: Path | None = None, tasks: str = "sst2") -> list[str]:
        return ["run", "--tasks", tasks, "--limit", "2", "--data-dir", str(DATA), "--model", str(STORIES),
                "--output", str(output or self.tmp / "out"), *RUN, *flags]

    def model(self, path: Path) -> list[str]:
        self.loads_model = True
        return ["run", "--tasks", "sst2", "--limit", "2", "--data-dir", str(DATA), "--model", str(path),
                "--output", str(self.tmp / "out"), *RUN]


def _read_only_output(c: Case) -> list[str]:
    import evalkit.cachedir  # noqa: F401 - unprivileged() may run as nobody, who may not reach the interpreter's library: import first
    import evalkit.engine  # noqa: F401
    import evalkit.summary  # noqa: F401
    from evalkit.cli.main import build_parser

    build_parser()  # imports every subcommand's module
    stack = contextlib.ExitStack()
    folder = stack.enter_context(open_folder())
    (folder / "ro").mkdir(mode=0o555)
    (folder / "ro").chmod(0o555)
    stack.enter_context(unprivileged())
    c.context = stack
    return c.sst2(output=folder / "ro" / "out")


def _full_disk_before(c: Case) -> list[str]:
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    c.monkeypatch.setattr("evalkit.preflight.shutil.disk_usage", lambda _p: usage(10**9, 10**9, 0))
    return c.sst2()


def _full_disk_while_writing(c: Case) -> list[str]:
    c.loads_model = True
    c.context = file_size_limit(1024)  # results.json is larger: its write fails as on a full disk
    return c.sst2()


def _existing_file_output(c: Case) -> list[str]:
    (c.tmp / "afile").write_text("x")
    return c.sst2(output=c.tmp / "afile")


def _big_yaml(c: Case) -> list[str]:
    path = c.tmp / "huge.yaml"
    with open(path, "wb") as f:
        f.truncate(100 * 1024 * 1024)  # 100 MB (sparse): refused by its size, never parsed
    return ["validate", str(path)]


def _ppl_200mb(c: Case) -> list[str]:
    return c.task("{{ text }}", b"word " * (40 * 1024 * 1024), fmt="text", kind=PPL)


def _not_gguf(c: Case) -> list[str]:
    (c.tmp / "model.gguf").write_text("this is a text file, not a GGUF model")
    return c.model(c.tmp / "model.gguf")


def _gguf_garbage(c: Case) -> list[str]:
    (c.tmp / "broken.gguf").write_bytes(gguf_header() + bytes(range(256)) * 8)
    return c.model(c.tmp / "broken.gguf")


def _evil_bin(c: Case) -> list[str]:
    return c.model(model_folder(c.tmp / "evil", "pytorch_model.bin", evil_bin(c.tmp / "PWNED")))


def _missing_weights(c: Case) -> list[str]:
    import shutil

    folder = c.tmp / "seven-layers"
    shutil.copytree(STORIES, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "num_hidden_layers": config["num_hidden_layers"] + 2}))
    return c.model(folder)


CASES: dict[str, tuple[Callable[[Case], list[str]], str]] = {
    # disk and output
    "output is a read-only folder": (_read_only_output, "Permission denied"),
    "output disk full (checked first)": (_full_disk_before, "bytes free"),
    "output disk full while writing": (_full_disk_while_writing, "cannot write"),
    "output is an existing file": (_existing_file_output, "--output"),
    "output under /dev/null": (lambda c: c.sst2(output=Path("/dev/null/out")), "--output /dev/null/out"),
    # flags
    "--seed -5": (lambda c: c.sst2("--seed", "-5"), "--seed must be an integer from 0"),
    "--fewshot -1": (lambda c: c.sst2("--fewshot", "-1"), "--fewshot must be 0 or a positive integer"),
    "--model-arg max_length=abc": (lambda c: c.sst2("--model-arg", "max_length=abc"), "max_length must be an integer"),
    "--model-arg max_length=-1 (perplexity)": (lambda c: c.sst2("--model-arg", "max_length=-1", tasks="wikitext2"),
                                                "max_length must be >= 1"),
    "--device mps": (lambda c: c.sst2("--device", "mps"), "--device mps"),
    "--bootstrap-iters 0": (lambda c: c.sst2("--bootstrap-iters", "0"), "--bootstrap-iters must be a positive integer"),
    "--bootstrap-iters -3": (lambda c: c.sst2("--bootstrap-iters", "-3"), "--bootstrap-iters must be a positive integer"),
    "--batch-size zero": (lambda c: c.sst2("--batch-size", "zero"), "--batch-size must be a positive integer or 'auto'"),
    # runaway templates
    "nested range loops": (lambda c: c.task(
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}{{ text }}",
        '{"text": "a", "label": 1}\n'), "took too long"),
    "namespace concatenation loop": (lambda c: c.task(
        "{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
        '{"text": "a", "label": 1}\n'), "more than the"),
    "center(300000000)": (lambda c: c.task("{{ text.center(300000000) }}", '{"text": "a", "label": 1}\n'), "str.center"),
    "'%999999999s'|format": (lambda c: c.task("{{ '%999999999s'|format(text) }}", '{"text": "a", "label": 1}\n'),
                             "format width"),
    # hostile data
    "jsonl integer of 5,000 digits": (lambda c: c.task("{{ text }}", '{"text": "a", "label": ' + "9" * 5000 + "}\n"),
                                      "d.jsonl:1: invalid JSON"),
    "JSON nested 100k deep": (lambda c: c.task("{{ text }}", '{"text": ' + "[" * 100_000 + "]" * 100_000 + "}\n"),
                              "nested too deeply"),
    "200 MB single line (perplexity)": (_ppl_200mb, "more than the 10,000,000 scored in one document"),
    "100 MB YAML file": (_big_yaml, "too large for a task file"),
    # model files
    ".bin that weights_only refuses": (_evil_bin, "UnpicklingError"),
    "'.gguf' file that is not GGUF": (_not_gguf, "is not a GGUF file"),
    "GGUF header followed by garbage": (_gguf_garbage, "cannot load GGUF file"),
    "weights missing what config.json asks for": (_missing_weights, "would be random"),
}


@pytest.fixture()
def no_model(monkeypatch):
    """For the inputs checked before the model loads: loading it is a test failure."""
    import evalkit.adapters.hf.adapter as causal  # where every HF kind loads its model

    real = causal.load_model

    def guarded(*args, **kwargs):
        if guarded.allowed:
            return real(*args, **kwargs)
        raise AssertionError("the model was loaded before this input was checked")

    guarded.allowed = False
    monkeypatch.setattr(causal, "load_model", guarded)
    return guarded


def _one_line(capsys, argv: list[str], context) -> tuple[int, list[str]]:
    with context:
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse
            code = exc.code
    err = capsys.readouterr().err
    return code, [line for line in err.splitlines() if line.strip()]


@pytest.mark.parametrize("name", list(CASES))
def test_each_input_is_one_line_and_exit_2(name, tmp_path, monkeypatch, capsys, no_model):
    import evalkit.adapters.hf.causal  # noqa: F401 - imported before any privilege drop

    build, expected = CASES[name]
    case = Case(tmp_path, monkeypatch)
    argv = build(case)
    no_model.allowed = case.loads_model
    code, lines = _one_line(capsys, argv, case.context)
    print(f"\n{name}: {lines}")
    assert code == 2, (code, lines)
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    assert lines[0].startswith("evalkit: error:") and expected in lines[0], lines[0]
    assert not (tmp_path / "PWNED").exists(), "no pickled code ran"


# -- hostile result files: leaderboard, report and compare each refuse with a line naming the file ----------
@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    return write_run(tmp_path_factory.mktemp("good"), "good", {"sst2": (sst2_spec(), sst2_records(np.ones(12, bool)))})


def _command(command: str, run_dir: Path, good: Path, tmp: Path) -> list[str]:
    if command == "leaderboard":
        return ["leaderboard", str(run_dir.parent)]
    if command == "report":
        return ["report", str(run_dir.parent), "-o", str(tmp / "report.html")]
    return ["compare", str(run_dir), str(good)]


@pytest.mark.parametrize("command", ["leaderboard", "report", "compare"])
@pytest.mark.parametrize("hostile", list(HOSTILE_RESULTS))
def test_each_hostile_result_file_is_one_line_naming_it(hostile, command, good_run, tmp_path, capsys):
    run_dir = make_hostile_results(good_run, tmp_path / "runs" / "bad-run", hostile)
    code, lines = _one_line(capsys, _command(command, run_dir, good_run, tmp_path), contextlib.nullcontext())
    print(f"\n{hostile} / {command}: {lines}")
    assert code == 2 and len(lines) == 1, (code, lines)
    assert "Traceback" not in lines[0] and "bad-run/results.json" in lines[0], lines[0]
    assert "\x1b" not in lines[0]


def test_a_sample_line_that_is_not_an_object_is_one_line_for_compare(good_run, tmp_path, capsys):
    import shutil

    run_dir = tmp_path / "bad-run"
    shutil.copytree(good_run, run_dir)
    samples = run_dir / "sst2.samples.jsonl"
    samples.write_text(samples.read_text() + "[1, 2]\n")
    code, lines = _one_line(capsys, ["compare", str(run_dir), str(good_run)], contextlib.nullcontext())
    assert code == 2 and len(lines) == 1 and "sst2.samples.jsonl:13: a sample line must be a JSON object" in lines[0], lines


def test_leaderboard_skips_a_bad_run_with_a_warning_and_shows_the_good_ones(good_run, tmp_path, capsys):
    import shutil

    root = tmp_path / "runs"
    shutil.copytree(good_run, root / "good")
    make_hostile_results(good_run, root / "bad-run", "400-digit number")
    assert main(["leaderboard", str(root)]) == 0
    captured = capsys.readouterr()
    assert "sst2/accuracy" in captured.out and "1.0000" in captured.out
    (warning,) = [line for line in captured.err.splitlines() if line.strip()]
    assert warning.startswith("evalkit: warning: skipped") and "bad-run/results.json" in warning


# -- compare | head --------------------------------------------------------------------------------------
def test_a_closed_output_pipe_is_one_line_not_a_traceback(good_run, tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "evalkit", "compare", str(good_run), str(good_run)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, text=True)
    proc.stdout.close()  # `| head` that has already exited
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "output pipe closed" in lines[0] and "Traceback" not in err, err
