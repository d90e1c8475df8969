"""The pipeline's structure as ``dvc.yaml`` and the imports say it: stages, upstream stages, code.

- ``upstream(stage)``: the stages whose outputs ``stage`` depends on, directly or not, read from the
  ``deps`` and ``outs`` of ``dvc.yaml`` (no hand copy of the graph).
- ``stage_code(stage)``: the project source files a stage runs — the static import closure of the
  command line (``pipeline/cli.py``) and the stage's entry module (``pipeline/stages/<stage>.py``),
  never entering another stage's entry module or a command no stage runs (``pipeline/tools/``). ``dvc.yaml`` must list exactly these as the stage's code deps (a test checks), and
  the training code fingerprint (``lineage``) hashes the library part of ``train``'s.

Package ``__init__.py`` files hold only a docstring (a test checks) and are left out.
"""

from __future__ import annotations

import ast
import copy
from functools import cache
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]  # the project holding the running code (and its dvc.yaml)
COMMAND = "ddpm-study"
# CLI commands that no stage runs (``pipeline/tools/<command>.py``): no stage's closure enters them.
TOOLS = ("backfill", "readme", "generate")
STAGES_DIR, TOOLS_DIR = "stages", "tools"  # under pipeline/


def packages(root: Path) -> dict[str, Path]:
    return {"ddpm_study": root / "src" / "ddpm_study", "pipeline": root / "pipeline"}


# The main study and the extended study (its stages run in the project root: ``wdir: ..``).
PIPELINES = ("dvc.yaml", "extended/dvc.yaml")


def dvc_stages(root: Path = ROOT) -> dict[str, dict]:
    """Every stage of both pipelines by name (names are unique across them); paths relative to ``root``."""
    stages: dict[str, dict] = {}
    for file in PIPELINES:
        path = root / file
        if path.is_file():
            stat = path.stat()
            stages.update(copy.deepcopy(_parsed(path, stat.st_mtime_ns, stat.st_size)["stages"]))
    return stages


@cache
def _parsed(path: Path, mtime_ns: int, size: int) -> dict:
    """``path`` parsed once per version of the file: a stage asks for the graph a few dozen times, and
    PyYAML's pure-Python loader took 2 s of every stage's start-up doing it again (libyaml's is faster still)."""
    return yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def entry_module(stage: str, root: Path = ROOT) -> Path | None:
    """``pipeline/stages/<command>.py`` of the stage's ``ddpm-study <command>``; None if the CLI itself does the work."""
    command = dvc_stages(root)[stage]["cmd"].split()
    if command[:1] != [COMMAND] or len(command) < 2:
        raise ValueError(f"dvc.yaml: stage {stage!r} does not run `{COMMAND} <command>`")
    path = packages(root)["pipeline"] / STAGES_DIR / f"{command[1].replace('-', '_')}.py"
    return path if path.is_file() else None


def _names(entries: list) -> list[str]:
    return [next(iter(e)) if isinstance(e, dict) else e for e in entries or []]


def outs(spec: dict) -> list[str]:
    return _names(spec.get("outs")) + _names(spec.get("metrics")) + _names(spec.get("plots"))


def upstream(stage: str, root: Path = ROOT) -> list[str]:
    """Every stage ``stage`` depends on through files, in ``dvc.yaml`` order."""
    stages = dvc_stages(root)
    produced = {out: name for name, spec in stages.items() for out in outs(spec)}

    def producers(name: str) -> set[str]:
        found = set()
        for dep in _names(stages[name].get("deps")):
            for out, owner in produced.items():
                if dep == out or dep.startswith(out + "/") or out.startswith(dep + "/"):
                    found.add(owner)
        return found

    seen, todo = set(), [stage]
    while todo:
        for p in producers(todo.pop()) - seen:
            seen.add(p)
            todo.append(p)
    return [name for name in stages if name in seen]


def _module_file(dotted: str, root: Path) -> Path | None:
    top, *rest = dotted.split(".")
    if top not in packages(root):
        return None
    base = packages(root)[top].joinpath(*rest)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _dotted(path: Path, root: Path) -> str:
    for top, folder in packages(root).items():
        if path.is_relative_to(folder):
            parts = [top, *path.relative_to(folder).with_suffix("").parts]
            return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    raise ValueError(f"{path} is not project code")


def imported_files(path: Path, root: Path = ROOT) -> set[Path]:
    """Project files ``path`` imports anywhere in its body (function-level imports too)."""
    package = _dotted(path, root) if path.name == "__init__.py" else _dotted(path, root).rpartition(".")[0]
    found: set[Path] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import name`: name may be a submodule or an attribute of pkg.
            modules = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        found |= {f for f in (_module_file(m, root) for m in modules) if f is not None}
    return found


def closure(entries: list[Path], stop: frozenset[Path] = frozenset(), root: Path = ROOT) -> set[Path]:
    """Project files reachable from ``entries`` by imports, not entering (nor counting) ``stop``."""
    seen: set[Path] = set()
    todo = [e for e in entries if e not in stop]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo += [f for f in imported_files(path, root) if f not in seen and f not in stop]
    return {p for p in seen if p.name != "__init__.py"}


@cache
def stage_code(stage: str, root: Path = ROOT) -> tuple[str, ...]:
    """Project files (paths relative to ``root``, sorted) that ``stage`` runs."""
    entries = {name: entry_module(name, root) for name in dvc_stages(root)}
    own = entries[stage]
    others = frozenset(e for name, e in entries.items() if e is not None and name != stage)
    others |= {packages(root)["pipeline"] / TOOLS_DIR / f"{tool}.py" for tool in TOOLS}
    cli = packages(root)["pipeline"] / "cli.py"
    files = closure([cli] + ([own] if own else []), stop=others, root=root)
    return tuple(sorted(p.relative_to(root).as_posix() for p in files))
