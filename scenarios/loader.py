"""Scenario files -> validated :class:`~scenarios.schema.Scenario` values, or every problem.

Loading never stops at the first mistake: YAML syntax, duplicate keys, unknown variables,
schema violations and dangling step references are all collected as :class:`Problem` values
(beancount style) carrying the file, line and column they point at. The positions come from
PyYAML's composed node tree: each mapping key and sequence item keeps its start mark, and a
pydantic error location (``("steps", 2, "refund", "amount")``) is walked through that tree.

Expansion happens before validation, on plain data:

* ``vars: {name: value}`` -- ``${name}`` in any string is replaced; a string that is exactly
  ``${name}`` takes the value with its type (a list, a number).
* ``cases: [{id: a, amount: "1.00"}, ...]`` -- one scenario per case, the case's keys added to
  ``vars``; the scenario's name gets `` [id]`` unless it already uses a variable.
* ``repeat: N`` on a step -- the step N times, with ``${i}`` = 1..N.

Discovery: a directory given to the runner or collected by pytest yields the ``.yaml``/``.yml``
files whose text has top-level ``name:`` and ``steps:`` keys, so other YAML (CI workflows,
compose files) beside scenarios is left alone.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from scenarios import schema
from scenarios.schema import Scenario, references

Path_ = tuple[str | int, ...]
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SNIFF_STEPS = re.compile(r"^steps\s*:", re.MULTILINE)
_SNIFF_NAME = re.compile(r"^name\s*:", re.MULTILINE)
SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a scenario file, with where it is."""

    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


@dataclass(frozen=True)
class Loaded:
    """A validated scenario with where it came from.

    :ivar case: the case id when the file has ``cases:``.
    :ivar step_lines: the source line of each (expanded) step, for reports.
    """

    scenario: Scenario
    path: Path
    case: str | None = None
    step_lines: tuple[int, ...] = ()

    @property
    def name(self) -> str:
        """The scenario's name (with its case)."""
        return self.scenario.name

    @property
    def where(self) -> str:
        """``file`` or ``file[case]``: a stable id for reports and pytest node ids."""
        return f"{self.path}[{self.case}]" if self.case else str(self.path)


@dataclass
class _Doc:
    """Plain data plus the mark of every mapping key and sequence item."""

    data: Any
    marks: dict[Path_, yaml.Mark] = field(default_factory=dict)


class _Expansion(Exception):
    """Raised inside expansion with the path of the offending value."""

    def __init__(self, path: Path_, message: str) -> None:
        self.path = path
        self.message = message


def is_scenario_file(path: Path) -> bool:
    """True for a YAML file that looks like a scenario (top-level ``name:`` and ``steps:``)."""
    if path.suffix not in SUFFIXES or not path.is_file():
        return False
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return bool(_SNIFF_STEPS.search(text) and _SNIFF_NAME.search(text))


def discover(paths: Iterable[str | Path]) -> tuple[list[Path], list[Problem]]:
    """Scenario files under ``paths``: files as given, directories searched recursively."""
    found: list[Path] = []
    problems: list[Problem] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(p for p in sorted(path.rglob("*")) if is_scenario_file(p))
        elif path.is_file():
            found.append(path)
        else:
            problems.append(Problem(str(path), 0, 0, "no such file or directory"))
    return found, problems


def load_paths(paths: Iterable[str | Path]) -> tuple[list[Loaded], list[Problem]]:
    """Load every scenario under ``paths``; all problems of all files are returned together."""
    files, problems = discover(paths)
    loaded: list[Loaded] = []
    for path in files:
        items, errs = load_file(path)
        loaded.extend(items)
        problems.extend(errs)
    return loaded, problems


def load_file(path: Path) -> tuple[list[Loaded], list[Problem]]:
    """Load one scenario file (several scenarios when it has ``cases:``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [], [Problem(str(path), 0, 0, f"cannot read: {exc}")]
    return load_text(text, str(path), path)


def load_text(text: str, filename: str, path: Path | None = None
              ) -> tuple[list[Loaded], list[Problem]]:
    """Load scenarios from YAML text; ``filename`` is what problems are reported against."""
    problems: list[Problem] = []
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        what = " ".join(s for s in (exc.context, exc.problem) if s)
        return [], [Problem(filename, line, col, f"YAML syntax: {what}")]
    if node is None:
        return [], [Problem(filename, 1, 1, "the file is empty: a scenario needs name and steps")]
    doc = _Doc(None)
    dup: list[tuple[yaml.Mark, str]] = []
    doc.data = _plain(node, (), doc.marks, dup)
    problems += [Problem(filename, m.line + 1, m.column + 1, msg) for m, msg in dup]
    if not isinstance(doc.data, dict):
        return [], [Problem(filename, 1, 1, "a scenario file is a mapping with name and steps")]

    def at(loc: Path_, message: str, key: bool = False) -> Problem:
        mark = _locate(doc.marks, loc)
        return Problem(filename, mark.line + 1 if mark else 1, mark.column + 1 if mark else 1,
                       message)

    base_vars = doc.data.get("vars") or {}
    if not isinstance(base_vars, dict):
        problems.append(at(("vars",), "vars is a mapping of name: value"))
        base_vars = {}
    cases = doc.data.get("cases")
    if cases is not None and (not isinstance(cases, list) or not cases
                              or not all(isinstance(c, dict) for c in cases)):
        problems.append(at(("cases",), "cases is a non-empty list of mappings (one per case)"))
        cases = None
    loaded: list[Loaded] = []
    for index, case in enumerate(cases or [None]):
        case_id = None if case is None else str(case.get("id", case.get("name", index + 1)))
        variables = {**base_vars, **(case or {})}
        body = {k: v for k, v in doc.data.items() if k not in ("vars", "cases")}
        try:
            expanded, origin = _expand(body, variables)
        except _Expansion as exc:
            problems.append(at(exc.path, exc.message))
            continue
        if case_id is not None and isinstance(expanded.get("name"), str) \
                and not _VAR.search(str(body.get("name", ""))):
            expanded["name"] = f"{expanded['name']} [{case_id}]"

        def step_loc(loc: Path_, origin: list[int] = origin) -> Path_:
            if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int) \
                    and loc[1] < len(origin):
                return ("steps", origin[loc[1]], *loc[2:])
            return loc

        prefix = f"case {case_id}: " if case_id is not None and len(cases or []) > 1 else ""
        try:
            scenario = Scenario.model_validate(expanded)
        except ValidationError as exc:
            for err in exc.errors():
                problems.append(at(step_loc(tuple(err["loc"])), prefix + _message(err)))
            continue
        ref_problems = [at(step_loc(loc), prefix + message)
                        for loc, message in _reference_mistakes(scenario)]
        if ref_problems:
            problems += ref_problems
            continue
        lines = tuple((_locate(doc.marks, step_loc(("steps", i))) or yaml.Mark("", 0, 0, 0, "", 0)
                       ).line + 1 for i in range(len(scenario.steps)))
        loaded.append(Loaded(scenario, path or Path(filename), case_id, lines))
    # The same mistake in a step shared by every case is reported once.
    return loaded, sorted(set(problems))


def _reference_mistakes(scenario: Scenario) -> list[tuple[Path_, str]]:
    """(where, what) for every step naming a step id not defined before it, and every id
    defined twice: a step refers only to what ran before it."""
    mistakes: list[tuple[Path_, str]] = []
    seen: dict[str, str] = {}  # step id -> its verb
    for i, step in enumerate(scenario.steps):
        for ref in references(step):
            key = "refund" if step.verb.endswith("_review") else "original"
            if ref not in seen:
                mistakes.append((("steps", i, step.verb, key),
                                 f"{ref!r} is not the id of an earlier step"))
            elif step.verb == "complete" and seen[ref] != "authorize":
                # only a hold can be completed: the host would answer 25, hiding the typo
                # (the line and column name the step; ``repeat`` renumbers steps)
                mistakes.append((("steps", i, step.verb, key),
                                 f"complete.original: {ref!r} is a {seen[ref]} step; "
                                 "complete names an authorize step"))
        if step.id is not None:
            if step.id in seen:
                mistakes.append((("steps", i, "id"), f"step id {step.id!r} is used twice"))
            seen[step.id] = step.verb
    return mistakes


def _plain(node: yaml.Node, path: Path_, marks: dict[Path_, yaml.Mark],
           dup: list[tuple[yaml.Mark, str]]) -> Any:
    """Node tree -> plain Python, recording marks; duplicate keys are reported."""
    marks.setdefault(path, node.start_mark)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            if not isinstance(key, str | int) or isinstance(key, bool):
                dup.append((key_node.start_mark, "mapping keys must be plain words"))
                continue
            if key in out:
                dup.append((key_node.start_mark, f"duplicate key {key!r}"))
            marks[(*path, key)] = key_node.start_mark
            out[key] = _plain(value_node, (*path, key), marks, dup)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_plain(item, (*path, i), marks, dup) for i, item in enumerate(node.value)]
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        return None
    return yaml.SafeLoader("").construct_object(node)


def _expand(body: dict[str, Any], variables: dict[str, Any]) -> tuple[dict[str, Any], list[int]]:
    """Substitute variables and unroll ``repeat``; return data and expanded->source step index."""
    out = _subst(body, variables, ())
    origin: list[int] = []
    steps = out.get("steps")
    if isinstance(steps, list):
        unrolled: list[Any] = []
        for i, step in enumerate(steps):
            raw_step = body["steps"][i]
            if isinstance(step, dict) and "repeat" in step:
                times = step["repeat"]
                if not isinstance(times, int) or isinstance(times, bool) or not 1 <= times <= 1000:
                    raise _Expansion(("steps", i, "repeat"), "repeat is a count from 1 to 1000")
                for n in range(1, times + 1):
                    again = _subst({k: v for k, v in raw_step.items() if k != "repeat"},
                                   {**variables, "i": n}, ("steps", i))
                    unrolled.append(again)
                    origin.append(i)
            else:
                unrolled.append(step)
                origin.append(i)
        out["steps"] = unrolled
    return out, origin


def _subst(value: Any, variables: dict[str, Any], path: Path_) -> Any:
    if isinstance(value, dict):
        skip_i = "repeat" in value  # ${i} is bound when the step is unrolled
        return {k: (v if skip_i and k != "repeat" and _only_i(v) else
                    _subst(v, variables, (*path, k))) for k, v in value.items()}
    if isinstance(value, list):
        return [_subst(v, variables, (*path, i)) for i, v in enumerate(value)]
    if isinstance(value, str):
        whole = _VAR.fullmatch(value)
        for name in _VAR.findall(value):
            if name not in variables:
                known = ", ".join(sorted(variables)) or "none defined"
                raise _Expansion(path, f"unknown variable ${{{name}}} (vars: {known})")
        if whole:
            return variables[whole.group(1)]
        return _VAR.sub(lambda m: str(variables[m.group(1)]), value)
    return value


def _only_i(value: Any) -> bool:
    """True when ``value`` mentions ``${i}`` anywhere (left for the unrolling pass)."""
    if isinstance(value, dict):
        return any(_only_i(v) for v in value.values())
    if isinstance(value, list):
        return any(_only_i(v) for v in value)
    return isinstance(value, str) and "${i}" in value


def _locate(marks: dict[Path_, yaml.Mark], loc: Path_) -> yaml.Mark | None:
    """The mark of the deepest node on ``loc``; segments pydantic adds (union tags) are skipped."""
    path: Path_ = ()
    best = marks.get(())
    for seg in loc:
        if (*path, seg) in marks:
            path = (*path, seg)
            best = marks[path]
    return best


def _message(err: Any) -> str:
    loc = [str(p) for p in err["loc"] if not str(p).startswith(("function-", "literal["))]
    if len(loc) >= 2 and loc[0] == "steps" and loc[1].isdigit():
        loc = [f"step {int(loc[1]) + 1}", *loc[2:]]
    where = ".".join(loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(loc[-1], sorted(_known_keys()), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown key {loc[-1]!r}" + (f" in {'.'.join(loc[:-1])}" if len(loc) > 1
                                             else "") + hint
    if kind == "missing":
        return f"missing key {loc[-1]!r}" + (f" in {'.'.join(loc[:-1])}" if len(loc) > 1 else "")
    msg = str(err["msg"]).removeprefix("Value error, ")
    return f"{where}: {msg}" if where else msg


def _known_keys() -> set[str]:
    keys = {"vars", "cases", "repeat"}
    for obj in vars(schema).values():
        if isinstance(obj, type) and issubclass(obj, BaseModel):
            keys.update(obj.model_fields)
    return keys


def iter_scenarios(paths: Iterable[str | Path]) -> Iterator[Loaded]:
    """Every scenario under ``paths``; raises ValueError listing all problems if any."""
    loaded, problems = load_paths(paths)
    if problems:
        raise ValueError("\n".join(str(p) for p in problems))
    yield from loaded
