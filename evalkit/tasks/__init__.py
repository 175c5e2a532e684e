"""Task specs: the YAML schema, safe loading and sandboxed prompt rendering."""

from .loader import available_tasks, load_task_file, parse_task, resolve_task
from .prompts import render
from .spec import TaskSpec

__all__ = ["TaskSpec", "available_tasks", "load_task_file", "parse_task", "render", "resolve_task"]
