"""Load task YAML files safely and turn them into validated TaskSpecs.

YAML goes through `yaml.safe_load` only: no tag can construct Python objects, and no task file
can name Python code to run.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from ..errors import EvalkitError
from .spec import (
    KINDS,
    LOCAL_FORMATS,
    DatasetSpec,
    FewShotSpec,
    GenerationSpec,
    HubSource,
    LocalSource,
    MetricSpec,
    SacrebleuSource,
    TaskSpec,
)

_SCALARS = (str, int, float, bool, type(None))
_TASK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_TOP_KEYS = {
    "task", "kind", "dataset", "doc_to_text", "metrics", "version", "description", "fields",
    "doc_to_target", "references_field", "doc_to_count", "choices", "labels", "target_delimiter",
    "fewshot", "generation",
}


def _inside(path: str) -> bool:
    """A relative path with no '..' part and no NUL byte (data.resolve_under checks symlinks when reading)."""
    return bool(path.strip()) and "\x00" not in path and not os.path.isabs(path) and ".." not in Path(path).parts


class _Fields:
    """Reads fields from one mapping and reports errors as `file: field 'a.b': problem`."""

    def __init__(self, data: Any, where: str, path: str):
        self.where, self.path = where, path
        if not isinstance(data, dict):
            self.fail(f"must be a mapping, got {type(data).__name__}")
        self.data = data

    def fail(self, problem: str, key: str | None = None) -> None:
        name = f"{self.path}.{key}" if self.path and key else (key or self.path or "<top>")
        raise EvalkitError(f"{self.where}: field '{name}': {problem}")

    def check_keys(self, allowed: set[str]) -> None:
        for key in self.data:
            if key not in allowed:
                self.fail(f"unknown field (allowed: {', '.join(sorted(allowed))})", str(key))

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None, required: bool = False) -> Any:
        if key not in self.data or self.data[key] is None:
            if required:
                self.fail("is required", key)
            return default
        value = self.data[key]
        if kind is str and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            self.fail(f"must be {names}, got {type(value).__name__}", key)
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.get(key, (list, str), default=[])
        if isinstance(value, str):
            value = [value]
        for i, item in enumerate(value):
            if not isinstance(item, (str, int, float)) or isinstance(item, bool):
                self.fail(f"item {i} must be a string", key)
        return tuple(str(v) for v in value)

    def relative_path(self, key: str, required: bool = False) -> str | None:
        """A path inside the data directory: relative, no '..', no NUL byte."""
        value = self.get(key, str, required=required)
        if value is not None and not _inside(value):
            self.fail(f"'{value}' must be a relative path inside the data directory (no '..')", key)
        return value

    def scalar_map(self, key: str, lists: bool) -> dict[str, Any]:
        """A mapping of names to plain values (strings, numbers, booleans, or with `lists`, flat lists of them)."""
        value = self.get(key, dict, default={})
        out = {}
        for name, item in value.items():
            if not isinstance(name, str):
                self.fail(f"keys must be names, got {type(name).__name__} {name!r}", key)
            flat = isinstance(item, list) and lists and all(isinstance(i, _SCALARS) for i in item)
            if not (isinstance(item, _SCALARS) or flat):
                self.fail(f"'{name}' must be a string, number or boolean{' (or a list of them)' if lists else ''}, "
                          f"got {type(item).__name__}", key)
            out[name] = item
        return out

    def sub(self, key: str) -> "_Fields | None":
        if key not in self.data or self.data[key] is None:
            return None
        return _Fields(self.data[key], self.where, f"{self.path}.{key}" if self.path else key)


def parse_task(raw: Any, where: str) -> TaskSpec:
    top = _Fields(raw, where, "")
    top.check_keys(_TOP_KEYS)
    kind = top.get("kind", str, required=True)
    if kind not in KINDS:
        top.fail(f"unknown kind '{kind}' (use one of: {', '.join(KINDS)})", "kind")
    dataset = _parse_dataset(top.sub("dataset") or top.fail("is required", "dataset"))
    metrics = _parse_metrics(top, kind, str(Path(where).parent))

    fewshot_f = top.sub("fewshot")
    fewshot = FewShotSpec()
    if fewshot_f:
        fewshot_f.check_keys({"k", "split", "local", "seed", "delimiter"})
        fewshot = FewShotSpec(
            k=fewshot_f.get("k", int, 0), split=fewshot_f.get("split", str),
            local=fewshot_f.relative_path("local"), seed=fewshot_f.get("seed", int, 1234),
            delimiter=fewshot_f.get("delimiter", str, "\n\n"),
        )
        if fewshot.k < 0:
            fewshot_f.fail("must be >= 0", "k")
    gen_f = top.sub("generation")
    generation = GenerationSpec()
    if gen_f:
        gen_f.check_keys({"max_new_tokens", "until"})
        generation = GenerationSpec(max_new_tokens=gen_f.get("max_new_tokens", int, 64), until=gen_f.strings("until"))
        if generation.max_new_tokens < 1:
            gen_f.fail("must be >= 1", "max_new_tokens")

    fields = top.scalar_map("fields", lists=False)
    task = top.get("task", str, required=True)
    if not _TASK_NAME.fullmatch(task):
        top.fail(f"'{task}' is not a task name: use letters, digits, '.', '_' and '-' (it names result files)", "task")
    spec = TaskSpec(
        task=task,
        kind=kind,
        dataset=dataset,
        doc_to_text=top.get("doc_to_text", str, required=True),
        metrics=tuple(metrics),
        version=top.get("version", str, "1"),
        description=top.get("description", str, ""),
        fields={str(k): str(v) for k, v in fields.items()},
        doc_to_target=top.get("doc_to_target", str),
        references_field=top.get("references_field", str),
        doc_to_count=top.get("doc_to_count", str),
        choices=top.strings("choices"),
        labels=top.strings("labels"),
        target_delimiter=top.get("target_delimiter", str, " "),
        fewshot=fewshot,
        generation=generation,
        source_file=where,
    )
    _check_kind_fields(spec, top)
    from .prompts import check_template

    for key in ("doc_to_text", "doc_to_target", "doc_to_count"):
        if getattr(spec, key):
            try:
                check_template(getattr(spec, key))
            except EvalkitError as err:
                top.fail(str(err), key)
    return spec


def _parse_metrics(top: _Fields, kind: str, base_dir: str) -> list[MetricSpec]:
    """Each metric's family, reported name and options, checked against what the family declares."""
    from ..metrics import EVALUATE, metric_class, metric_names, metric_targets  # classes only, no metric library
    from ..metrics.evaluate_bridge import local_module, looks_like_path, module_base
    from ..metrics.naming import METRIC_NAME
    from ..metrics.options import option_problems

    raw_metrics = top.get("metrics", list, required=True)
    if not raw_metrics:
        top.fail("must list at least one metric", "metrics")
    metrics: list[MetricSpec] = []
    reported: dict[str, int] = {}  # reported name (or name prefix) -> index of the metric that reports it
    for i, item in enumerate(raw_metrics):
        m = _Fields({"name": item} if isinstance(item, str) else item, top.where, f"metrics[{i}]")
        module = None
        if EVALUATE in m.data:
            m.check_keys({EVALUATE, "options", "as", "higher_is_better"})
            name, module = EVALUATE, m.get(EVALUATE, str, required=True)
            if not module.strip() or "\x00" in module:
                m.fail("must name an evaluate module: a script path relative to the task file, or a hub id", EVALUATE)
            if looks_like_path(module) and local_module(module, base_dir) is None:
                m.fail(f"evaluate module '{module}' not found (looked for {Path(base_dir) / module})", EVALUATE)
        else:
            m.check_keys({"name", "options", "as"})
            name = m.get("name", str, required=True)
        cls = _metric_class(m, name, metric_class) if name in metric_targets() else None
        if cls is None or kind not in cls.kinds or (name == EVALUATE and not module):
            known = ", ".join(n for n in metric_names(kind) if n != EVALUATE)
            hint = "; an evaluate module is {evaluate: PATH_OR_ID}" if name == EVALUATE and not module else ""
            m.fail(f"unknown metric '{name}' for kind {kind} (known: {known}){hint}", EVALUATE if module else "name")
        options = m.scalar_map("options", lists=True)
        if cls.OPTIONS is not None:
            for key, problem in option_problems(cls.OPTIONS, options):
                m.fail(problem, f"options.{key}")
        alias = m.get("as", str)
        if alias is not None and not METRIC_NAME.fullmatch(alias):
            m.fail(f"'{alias}' is not a metric name: start with a letter, then letters, digits, '_' or '-'", "as")
        base = alias or (module_base(module) if module else None)
        if module and not METRIC_NAME.fullmatch(base or ""):
            m.fail(f"'{base}' is not a metric name; give the module a name with `as:`", EVALUATE)
        spec = MetricSpec(name=name, options=options, alias=alias, module=module, base_dir=base_dir,
                          higher_is_better=m.get("higher_is_better", bool) if module else None)
        for root in ([base] if base else cls.names):
            if root in reported:
                j = reported[root]
                if metrics[j].to_dict() == spec.to_dict():
                    m.fail(f"metric '{spec.label}' is listed twice (also metrics[{j}]); remove one")
                suffix = next((str(v) for v in options.values() if METRIC_NAME.fullmatch(f"x{v}")), str(i))
                m.fail(f"'{root}' is already reported by metrics[{j}]; give this one its own name with `as:` "
                       f"(e.g. as: {root}_{suffix})")
            reported[root] = i
        metrics.append(spec)
    return metrics


def _metric_class(m: _Fields, name: str, metric_class: Any) -> Any:
    try:
        return metric_class(name)
    except EvalkitError as err:
        m.fail(str(err), "name")


def _check_kind_fields(spec: TaskSpec, top: _Fields) -> None:
    if spec.kind == "multiple_choice":
        if len(spec.choices) < 2:
            top.fail("a multiple_choice task needs at least two choices", "choices")
        if spec.labels and len(spec.labels) != len(spec.choices):
            top.fail(f"has {len(spec.labels)} labels for {len(spec.choices)} choices", "labels")
        if not spec.doc_to_target:
            top.fail("is required for multiple_choice (a template giving the gold label or index)", "doc_to_target")
    elif spec.kind == "generate":
        if not spec.doc_to_target and not spec.references_field:
            top.fail("a generate task needs doc_to_target or references_field", "doc_to_target")
    from ..metrics import metric_class

    for i, metric in enumerate(spec.metrics):
        if (problem := metric_class(metric.name).check_options(metric.options, spec.label_names)) is not None:
            top.fail(problem, f"metrics[{i}].options")


def _parse_dataset(f: _Fields) -> DatasetSpec:
    f.check_keys({"hub", "sacrebleu", "local"})
    hub = sacre = local = None
    if (h := f.sub("hub")) is not None:
        h.check_keys({"path", "name", "split"})
        hub = HubSource(path=h.get("path", str, required=True), name=h.get("name", str), split=h.get("split", str, "test"))
    if (s := f.sub("sacrebleu")) is not None:
        s.check_keys({"test_set", "langpair"})
        sacre = SacrebleuSource(test_set=s.get("test_set", str, required=True), langpair=s.get("langpair", str, required=True))
    if (lf := f.sub("local")) is not None:
        lf.check_keys({"path", "format", "split_on", "text_field", "label_field", "source", "references", "files"})
        fmt = lf.get("format", str, required=True)
        if fmt not in LOCAL_FORMATS:
            lf.fail(f"unknown format '{fmt}' (use one of: {', '.join(LOCAL_FORMATS)})", "format")
        path = lf.relative_path("path", required=True)
        split_on = lf.get("split_on", str)
        if split_on is not None:
            try:
                re.compile(split_on)
            except (re.error, RecursionError, OverflowError) as err:
                lf.fail(f"is not a valid regular expression: {err}", "split_on")
        local = LocalSource(
            path=path, format=fmt, split_on=split_on,
            text_field=lf.get("text_field", str, "text"), label_field=lf.get("label_field", str, "label"),
            source=lf.relative_path("source"), references=lf.strings("references"),
            files={str(k): str(v) for k, v in lf.scalar_map("files", lists=False).items()},
        )
        for ref in local.references:
            if not _inside(ref):
                lf.fail(f"'{ref}' must be a relative path inside the data directory (no '..')", "references")
        if fmt == "parallel" and (not local.source or not local.references):
            lf.fail("format 'parallel' needs 'source' and 'references' files", "source")
        for label, name in local.files.items():
            if not _inside(name) or len(Path(name).parts) != 1:
                lf.fail(f"'{name}' must be a file name inside the folder 'path' (no '/' or '..')", f"files.{label}")
        if fmt == "label_lines" and len(local.files) < 1:
            lf.fail("format 'label_lines' needs 'files': {LABEL: FILE, ...}, one example per line of each file", "files")
        if local.files and fmt != "label_lines":
            lf.fail(f"'files' is for format 'label_lines', not '{fmt}'", "files")
    if not (hub or sacre or local):
        f.fail("needs at least one of hub, sacrebleu or local")
    return DatasetSpec(hub=hub, sacrebleu=sacre, local=local)


def read_yaml(path: str | os.PathLike, what: str = "task file") -> Any:
    """A YAML file's content (safe_load); every failure is one EvalkitError line naming the file."""
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise EvalkitError(f"{where}: {what} not found")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise EvalkitError(f"{where}: invalid YAML{line}: {problem}") from None
    except UnicodeDecodeError:
        raise EvalkitError(f"{where}: not UTF-8 text") from None
    except RecursionError:
        raise EvalkitError(f"{where}: invalid YAML: nested too deeply") from None
    except (ValueError, TypeError, AttributeError, OverflowError) as err:  # PyYAML's own bugs on odd tags (a bad !!timestamp)
        raise EvalkitError(f"{where}: invalid YAML: {type(err).__name__}: {err}") from None


def load_task_file(path: str | os.PathLike) -> TaskSpec:
    return parse_task(read_yaml(path, "task file"), str(Path(path)))


def tasks_dirs() -> list[Path]:
    """Where task names are looked up: $EVALKIT_TASKS_DIR, ./tasks, then the tasks shipped beside the package."""
    dirs = []
    if env := os.environ.get("EVALKIT_TASKS_DIR"):
        dirs += [Path(p) for p in env.split(os.pathsep) if p]
    dirs += [Path.cwd() / "tasks", Path(__file__).resolve().parents[2] / "tasks"]
    seen, out = set(), []
    for d in dirs:
        if d.is_dir() and d.resolve() not in seen:
            seen.add(d.resolve())
            out.append(d)
    return out


def available_tasks() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for d in tasks_dirs():
        for f in sorted(d.glob("*.yaml")):
            found.setdefault(f.stem, f)
    return found


def resolve_task(name_or_path: str) -> TaskSpec:
    """A task name (looked up in tasks_dirs) or a path to a YAML file."""
    if name_or_path.endswith((".yaml", ".yml")) or os.sep in name_or_path:
        return load_task_file(name_or_path)
    known = available_tasks()
    if name_or_path not in known:
        raise EvalkitError(
            f"unknown task '{name_or_path}' (known: {', '.join(sorted(known)) or 'none'}); "
            "pass a task name from `evalkit tasks` or a path to a YAML file"
        )
    spec = load_task_file(known[name_or_path])
    if spec.task != name_or_path:
        raise EvalkitError(f"{known[name_or_path]}: field 'task': is '{spec.task}' but the file is named '{name_or_path}.yaml'")
    return spec
