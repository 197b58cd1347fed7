"""Load and check definitions: every problem in a file is reported, each as ``file:line:column: message``.

Structure (keys, types, limit strings, expressions) is checked by the pydantic models; the rest
(the DAG, departments, form names, time budget) here, with networkx for the graph.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
from pydantic import TypeAdapter, ValidationError

from .expressions import ExpressionTooCostly
from .limits import Limit, format_working_hours
from .model import (
    DEFINITION_KEY_PATTERN,
    STEP_KINDS,
    Definition,
    Department,
    DepartmentsFile,
    FormField,
    Step,
    decides,
)
from .source import Loc, Problem, SourceError, YamlSource, did_you_mean

DEPARTMENTS_FILE = "departments.yaml"
CALENDAR_FILE = "calendar.yaml"
# Files in a definitions folder that are not process definitions.
RESERVED_FILES = frozenset({DEPARTMENTS_FILE, CALENDAR_FILE})

_STEP_ADAPTER: TypeAdapter[Step] = TypeAdapter(Step)


# ---------------------------------------------------------------------------------------------
# pydantic errors → positioned problems


def _describe(error: Mapping[str, Any], data: Any, allowed: Iterable[str] = ()) -> str:
    loc = list(error["loc"])
    kind = error["type"]
    where = _where(loc[:-1] if kind in ("missing", "extra_forbidden") else loc, data)
    prefix = f"{where}: " if where else ""
    if kind == "missing":
        return f"{prefix}missing required key {loc[-1]!r}"
    if kind == "extra_forbidden":
        return f"{prefix}unknown key {loc[-1]!r}{did_you_mean(str(loc[-1]), allowed)}"
    if kind == "union_tag_invalid":
        return f"{prefix}unknown step kind {error['input'].get('kind')!r}: use one of {', '.join(STEP_KINDS)}"
    if kind == "union_tag_not_found":
        return f"{prefix}missing required key 'kind': one of {', '.join(STEP_KINDS)}"
    return prefix + str(error["msg"]).removeprefix("Value error, ")


def _where(loc: list[Any], data: Any) -> str:
    """A readable location: ``step 'seal': limit`` rather than ``steps.2.approval.limit``."""
    loc = [part for part in loc if not (isinstance(part, str) and part in STEP_KINDS)]
    words: list[str] = []
    if len(loc) >= 2 and loc[0] in ("steps", "form", "materials", "departments") and isinstance(loc[1], int):
        noun, id_key = {
            "steps": ("step", "id"),
            "form": ("form field", "key"),
            "materials": ("material", "key"),
            "departments": ("department", "code"),
        }[loc[0]]
        try:
            name = data[loc[0]][loc[1]][id_key]
        except (KeyError, IndexError, TypeError):
            name = None
        words.append(f"{noun} {name!r}" if isinstance(name, str) else f"{loc[0]}[{loc[1]}]")
        loc = loc[2:]
    rest = ".".join(str(part) for part in loc)
    return ": ".join([*words, rest] if rest else words)


def _allowed_keys(model_for_loc: Any) -> list[str]:
    return list(getattr(model_for_loc, "model_fields", {}))


def _structure_problems(source: YamlSource, exc: ValidationError, prefix: Loc = ()) -> list[Problem]:
    from . import model as m

    problems = []
    for error in exc.errors():
        loc = [*prefix, *error["loc"]]
        allowed = _allowed_keys(_model_at(loc, source.data, m))
        text = _describe({**error, "loc": loc}, source.data, allowed)
        problems.append(source.problem(loc, text, key=error["type"] == "extra_forbidden"))
    return problems


def _model_at(loc: Loc, data: Any, m: Any) -> Any:
    """The model class whose key a location names (for 'did you mean' among its keys)."""
    parents = list(loc[:-1])
    if not parents:
        return m.Definition
    head = parents[0]
    if head == "limits":
        return m.Limits
    if head == "guide":
        return m.Guide
    if head == "form":
        return m.FormField
    if head == "materials":
        return m.Material
    if head == "departments":
        return m.Department
    if head == "steps" and len(parents) >= 2 and isinstance(parents[1], int):
        if len(parents) >= 4 and parents[-2] == "certificates":
            return m.Certificate
        if len(parents) >= 4 and parents[-2] == "lookups":
            return m.Lookup
        try:
            kind = data["steps"][parents[1]].get("kind")
        except (KeyError, IndexError, TypeError, AttributeError):
            kind = None
        return {
            "acceptance": m.AcceptanceStep,
            "survey": m.SurveyStep,
            "approval": m.ApprovalStep,
            "auto": m.AutoStep,
            "issue": m.IssueStep,
            "notify": m.NotifyStep,
        }.get(kind)
    return None


# ---------------------------------------------------------------------------------------------
# departments


def _producing_step_problems(source: YamlSource, loc: Loc, certificate: Any, steps: dict) -> list[Problem]:
    """A certificate's ``steps`` name steps its issuer decides; without them, a certificate whose issuer
    decides several steps, some conditional and some not, likely goes out more often than meant."""
    own = {step_id: s for step_id, (_, s) in steps.items() if decides(s, certificate.issuer)}
    found = [
        source.problem(
            (*loc, "steps", index),
            f"certificate {certificate.key!r} names step {step_id!r}, which is no step {certificate.issuer!r} "
            f"decides{did_you_mean(step_id, own)}",
        )
        for index, step_id in enumerate(certificate.steps)
        if step_id not in own
    ]
    conditional = [step_id for step_id, s in own.items() if s.when is not None]
    if not certificate.steps and certificate.key not in own and 0 < len(conditional) < len(own):
        found.append(
            source.problem(
                (*loc, "key"),
                f"certificate {certificate.key!r} goes out whenever {certificate.issuer!r} approves any of its "
                f"steps ({', '.join(own)}), one of which always runs, though {', '.join(conditional)} may be "
                f"skipped; if it comes from those, say so with steps: [{', '.join(conditional)}]",
                warning=True,
            )
        )
    return found


def load_departments(path: str | Path) -> dict[str, Department]:
    """Read ``departments.yaml``; raises SourceError listing every problem."""
    source = YamlSource.read(path)
    data = source.data
    try:
        parsed = DepartmentsFile.model_validate(data)
    except ValidationError as exc:
        raise SourceError(_structure_problems(source, exc)) from None
    problems: list[Problem] = []
    by_code: dict[str, Department] = {}
    for index, department in enumerate(parsed.departments):
        if department.code in by_code:
            problems.append(
                source.problem(("departments", index, "code"), f"duplicate department code {department.code!r}")
            )
        by_code[department.code] = department
    for index, department in enumerate(parsed.departments):
        if department.parent is not None and department.parent not in by_code:
            problems.append(
                source.problem(
                    ("departments", index, "parent"),
                    f"parent {department.parent!r} is no department{did_you_mean(department.parent, by_code)}",
                )
            )
    if problems:
        raise SourceError(problems)
    return by_code


# ---------------------------------------------------------------------------------------------
# definitions


@dataclass
class _Parts:
    """What could be read of a definition, even when parts of it are broken.

    Graph checks run on the skeleton (every step with an id, valid or not) so one broken step
    does not make its successors look unreachable; detailed checks run on the valid steps.
    """

    source: YamlSource
    definition: Definition | None
    skeleton: list[tuple[int, str, list[str]]] = field(default_factory=list)  # index, id, after
    steps: dict[str, tuple[int, Step]] = field(default_factory=dict)
    unplaced: set[str] = field(default_factory=set)  # steps whose `after` is broken: place unknown
    fields: dict[str, FormField] = field(default_factory=dict)
    fields_known: set[str] = field(default_factory=set)
    promised: Limit | None = None
    statutory: Limit | None = None
    case_kind: str = "promised"


def load_definition(path: str | Path, departments: Mapping[str, Department], *, text: str | None = None) -> Definition:
    """Parse and check one definition file; raises SourceError with every problem found."""
    return check_definition(path, departments, text=text)[0]


def check_definition(
    path: str | Path, departments: Mapping[str, Department], *, text: str | None = None
) -> tuple[Definition, list[Problem]]:
    """(definition, warnings) of one definition file; raises SourceError with every problem found."""
    source = YamlSource.read(path, text)
    if not isinstance(source.data, dict):
        raise SourceError([source.problem((), "a definition is a mapping with key, name, steps …")])
    data = source.data
    problems: list[Problem] = []
    definition: Definition | None = None
    try:
        definition = Definition.model_validate(data)
    except ValidationError as exc:
        problems.extend(_structure_problems(source, exc))
    parts = _gather(source, data, definition)
    problems.extend(_check(parts, departments, Path(path)))
    errors = [p for p in problems if not p.warning]
    if errors:  # the warnings wait until the file is valid
        raise SourceError(sorted(set(errors)))
    assert definition is not None
    return definition, sorted(set(problems))


def parse_definition(text: str, name: str = "<stored>") -> Definition:
    """A definition already checked at publish time (the engine reads stored versions with this)."""
    source = YamlSource.read(name, text)
    try:
        return Definition.model_validate(source.data)
    except ValidationError as exc:
        raise SourceError(_structure_problems(source, exc)) from None


def _gather(source: YamlSource, data: dict[str, Any], definition: Definition | None) -> _Parts:
    parts = _Parts(source=source, definition=definition)
    raw_steps = data.get("steps") if isinstance(data.get("steps"), list) else []
    for index, raw in enumerate(raw_steps):
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
            continue
        after = raw.get("after", [])
        if isinstance(after, str):  # `after: accept` is reported as a type error; draw the edge meant
            after = [after]
        elif not isinstance(after, list):
            parts.unplaced.add(raw["id"])
            after = []
        parts.skeleton.append((index, raw["id"], [a for a in after if isinstance(a, str)]))
        step = _lenient_step(raw)
        if step is not None:
            parts.steps.setdefault(step.id, (index, step))
    raw_form = data.get("form") if isinstance(data.get("form"), list) else []
    for raw in raw_form:
        if isinstance(raw, dict) and isinstance(raw.get("key"), str):
            parts.fields_known.add(raw["key"])
            try:
                parsed = FormField.model_validate(raw)
            except ValidationError:
                continue
            parts.fields.setdefault(parsed.key, parsed)
    limits = data.get("limits") if isinstance(data.get("limits"), dict) else {}
    for name in ("promised", "statutory"):
        with contextlib.suppress(ValueError):  # a bad limit string is reported by the model check
            setattr(parts, name, Limit.parse(limits[name]) if name in limits else None)
    if data.get("case_kind") in ("promised", "instant"):
        parts.case_kind = data["case_kind"]
    return parts


def _lenient_step(raw: dict[str, Any]) -> Step | None:
    """The step without its broken keys, so its other keys can still be checked."""
    try:
        return _STEP_ADAPTER.validate_python(raw)
    except ValidationError as exc:
        broken = set()
        for error in exc.errors():
            loc = [p for p in error["loc"] if not (isinstance(p, str) and p in STEP_KINDS)]
            if loc and error["type"] != "missing":
                broken.add(loc[0])
        repaired = {k: v for k, v in raw.items() if k not in broken or k in ("id", "kind")}
        repaired.setdefault("name", "?")
    try:
        return _STEP_ADAPTER.validate_python(repaired)
    except ValidationError:
        return None


def _check(parts: _Parts, departments: Mapping[str, Department], path: Path) -> list[Problem]:
    source = parts.source
    problems: list[Problem] = []

    def at(loc: Loc, message: str, *, key: bool = False) -> None:
        problems.append(source.problem(loc, message, key=key))

    data = source.data
    key_ok = isinstance(data.get("key"), str) and re.match(DEFINITION_KEY_PATTERN, data["key"]) is not None
    if key_ok and path.suffix in (".yaml", ".yml") and data["key"] != path.stem:
        at(
            ("key",),
            f"key {data['key']!r} does not match the file name {path.name}: name the file "
            f"{data['key']}.yaml or change the key",
        )

    # duplicates -------------------------------------------------------------------------------
    first_index: dict[str, int] = {}
    for index, step_id, _after in parts.skeleton:
        if step_id in first_index:
            line, _ = source.position(("steps", first_index[step_id]))
            at(("steps", index, "id"), f"duplicate step id {step_id!r} (first defined at line {line})")
        else:
            first_index[step_id] = index
    for list_name, key_name in (("form", "key"), ("materials", "key")):
        seen: set[str] = set()
        raw_list = data.get(list_name) if isinstance(data.get(list_name), list) else []
        for index, raw in enumerate(raw_list):
            if isinstance(raw, dict) and isinstance(raw.get(key_name), str):
                if raw[key_name] in seen:
                    at((list_name, index, key_name), f"duplicate {list_name} key {raw[key_name]!r}")
                seen.add(raw[key_name])

    # the graph ----------------------------------------------------------------------------------
    dangling: set[str] = set(parts.unplaced)
    graph = nx.DiGraph()
    for _index, step_id, _after in parts.skeleton:
        graph.add_node(step_id, index=first_index[step_id])
    for index, step_id, after in parts.skeleton:
        for position, before in enumerate(after):
            if before not in first_index:
                dangling.add(step_id)
                at(
                    ("steps", index, "after", position),
                    f"step {step_id!r}: after names unknown step {before!r}{did_you_mean(before, first_index)}",
                )
            elif before == step_id:
                at(("steps", index, "after", position), f"step {step_id!r} waits for itself")
            else:
                graph.add_edge(before, step_id)

    cycle_members: set[str] = set()
    for component in sorted(nx.strongly_connected_components(graph), key=lambda c: min(first_index[s] for s in c)):
        if len(component) < 2:
            continue
        start = min(component, key=first_index.__getitem__)  # earliest in the file, so output is stable
        cycle = nx.find_cycle(graph.subgraph(component), source=start)
        path_ids = [edge[0] for edge in cycle] + [cycle[0][0]]
        cycle_members |= component
        at(
            ("steps", first_index[start], "after"),
            "cycle: " + " → ".join(path_ids) + "; a step may only wait for steps that come before it",
        )

    acceptance = [(index, step) for index, step in parts.steps.values() if step.kind == "acceptance"]
    raw_kinds = [(index, raw.get("kind")) for index, raw in enumerate(data.get("steps") or []) if isinstance(raw, dict)]
    if not any(kind == "acceptance" for _, kind in raw_kinds) and parts.skeleton:
        at(
            ("steps",),
            "no acceptance step: every process starts with one step of kind acceptance (综合受理)",
            key=True,
        )
    for index, step in acceptance[1:]:
        at(
            ("steps", index, "kind"),
            f"step {step.id!r}: more than one acceptance step "
            f"(first is {acceptance[0][1].id!r}); a process has exactly one",
        )
    entries = [(index, step_id) for index, step_id, after in parts.skeleton if not after and step_id not in dangling]
    if len(entries) > 1:
        names = ", ".join(step_id for _, step_id in entries)
        for index, step_id in entries:
            if parts.steps.get(step_id, (0, None))[1] is None or parts.steps[step_id][1].kind != "acceptance":
                at(
                    ("steps", index, "id"),
                    f"step {step_id!r}: more than one entry step ({names}); "
                    "only the acceptance step may have no `after`",
                )
    for index, step in acceptance[:1]:
        if step.after:
            at(
                ("steps", index, "after"),
                f"acceptance step {step.id!r} must be the entry: remove its `after`",
            )
        # a step with a broken `after` is already reported; count it as reached so its successors are not
        roots = {step.id} | dangling
        reachable = roots.union(*(nx.descendants(graph, root) for root in roots))
        for other_index, step_id, _after in parts.skeleton:
            if step_id not in reachable and first_index[step_id] == other_index and step_id not in cycle_members:
                at(
                    ("steps", other_index, "id"),
                    f"step {step_id!r} is unreachable from the acceptance step {step.id!r}",
                )
        for other_index, step_id, _after in parts.skeleton:
            if step_id in cycle_members and step_id not in reachable and first_index[step_id] == other_index:
                at(
                    ("steps", other_index, "id"),
                    f"step {step_id!r} is unreachable from the acceptance step {step.id!r} (it is on a cycle)",
                )

    # departments, expressions, per-kind rules ------------------------------------------------------
    # from the raw steps, so a step broken elsewhere still counts as taking part
    process_departments: set[str] = set()
    for raw in data.get("steps") or []:
        if isinstance(raw, dict):
            if isinstance(raw.get("department"), str):
                process_departments.add(raw["department"])
            if isinstance(raw.get("participants"), list):
                process_departments.update(p for p in raw["participants"] if isinstance(p, str))
    form_names = parts.fields_known
    for index, step in sorted(parts.steps.values(), key=lambda item: item[0]):
        loc = ("steps", index)
        if step.department not in departments:
            at(
                (*loc, "department"),
                f"step {step.id!r}: unknown department {step.department!r}"
                f"{did_you_mean(step.department, departments)}; departments are listed in {DEPARTMENTS_FILE}",
            )
        elif step.role or getattr(step, "signers", None):
            # a role nobody in the department can hold leaves the task (or its countersign) unworkable
            department = departments[step.department]
            roles = {department.supervisor_role, *department.roles}
            named = [(("role",), step.role)] if step.role else []
            named += [(("signers", position), role) for position, role in enumerate(getattr(step, "signers", ()))]
            for where, role in named:
                if role not in roles:
                    at(
                        (*loc, *where),
                        f"step {step.id!r}: {role!r} is no role of department {step.department!r}"
                        f"{did_you_mean(role, roles)}; add it to the department's roles in {DEPARTMENTS_FILE}",
                    )
        for position, participant in enumerate(getattr(step, "participants", ())):
            if participant not in departments:
                at(
                    (*loc, "participants", position),
                    f"step {step.id!r}: unknown participant department "
                    f"{participant!r}{did_you_mean(participant, departments)}",
                )
        if len(set(getattr(step, "participants", ()))) != len(getattr(step, "participants", ())):
            at((*loc, "participants"), f"step {step.id!r}: a participant is listed twice")
        for name, expression in (("when", step.when), ("rule", getattr(step, "rule", None))):
            if expression is None:
                continue
            if expression.names <= set(parts.fields):
                trouble = _trial_run(expression, parts.fields)
                if trouble:
                    at((*loc, name), f"step {step.id!r}: {name} {expression.source!r} {trouble}")
            for unknown in sorted(expression.names - form_names):
                at(
                    (*loc, name),
                    f"step {step.id!r}: {name} names {unknown!r}, which is no form field"
                    f"{did_you_mean(unknown, form_names)}",
                )
        for position, editable in enumerate(step.editable):
            if editable not in form_names:
                at(
                    (*loc, "editable", position),
                    f"step {step.id!r}: editable names {editable!r}, which is no "
                    f"form field{did_you_mean(editable, form_names)}",
                )
        if step.kind == "auto" and step.result_field is not None:
            target = parts.fields.get(step.result_field)
            if step.result_field not in form_names:
                at(
                    (*loc, "result_field"),
                    f"step {step.id!r}: result_field {step.result_field!r} is no form "
                    f"field{did_you_mean(step.result_field, form_names)}",
                )
            elif target is not None and target.type != "bool":
                at(
                    (*loc, "result_field"),
                    f"step {step.id!r}: result_field {step.result_field!r} must be a bool field, not {target.type}",
                )
        if step.kind == "auto":
            _check_lookups(step, loc, form_names, at)
        if step.kind == "approval" and step.deemed_consent and step.limit is None:
            at(
                (*loc, "deemed_consent"),
                f"step {step.id!r}: deemed_consent (逾期视为同意) needs a limit: the department is deemed to consent "
                "when the limit has passed",
            )
        if step.kind == "issue" and step.auto_issue and "online" not in step.delivery:
            at(
                (*loc, "auto_issue"),
                f"step {step.id!r}: auto_issue issues e-certificates online; add online to its delivery",
            )
        if step.kind == "issue":
            later = sorted(graph.successors(step.id), key=first_index.__getitem__) if step.id in graph else []
            if later:
                at(
                    (*loc, "id"),
                    f"issue step {step.id!r} must be last on every path, but "
                    + " and ".join(repr(s) for s in later)
                    + (" come after it" if len(later) > 1 else " comes after it"),
                )
            for position, certificate in enumerate(step.certificates):
                if certificate.issuer not in process_departments:
                    at(
                        (*loc, "certificates", position, "issuer"),
                        f"step {step.id!r}: certificate {certificate.key!r} issuer {certificate.issuer!r} is no "
                        f"department of this process{did_you_mean(certificate.issuer, process_departments)}",
                    )
                place = (*loc, "certificates", position)
                problems.extend(_producing_step_problems(source, place, certificate, parts.steps))

    # warnings: valid, but probably not meant -----------------------------------------------------
    if not cycle_members and nx.is_directed_acyclic_graph(graph):
        for index, step in sorted(parts.steps.values(), key=lambda item: item[0]):
            if step.kind != "issue" or step.when is not None or not step.after or step.id in dangling:
                continue
            gates = _skip_gates(step.id, parts.steps, graph)
            if gates:
                names = ", ".join(f"{gate} (when: {parts.steps[gate][1].when.source})" for gate in gates)  # type: ignore[union-attr]
                problems.append(
                    source.problem(
                        ("steps", index, "after"),
                        f"issue step {step.id!r} waits only on steps that may be skipped: {names}. When their "
                        "conditions are false it is skipped too and the applicant gets nothing; add a step that "
                        "always runs to its `after` (kaiban-qiye.yaml's issue waits for licence as well)",
                        warning=True,
                    )
                )

    # time limits ------------------------------------------------------------------------------
    raw_limits = data.get("limits") if isinstance(data.get("limits"), dict) else {}
    if parts.case_kind == "promised" and "promised" not in raw_limits and "limits" not in _broken_keys(data):
        at(
            ("limits",) if "limits" in data else ("key",),
            "a promised case (承诺件) needs limits.promised: the working-day limit promised to the applicant",
            key="limits" in data,
        )
    if parts.promised and parts.statutory and parts.promised.working_hours > parts.statutory.working_hours:
        at(
            ("limits", "promised"),
            f"promised limit {parts.promised} is above the statutory limit "
            f"{parts.statutory} (承诺时限 must not exceed 法定时限)",
        )
    if parts.promised and not cycle_members and nx.is_directed_acyclic_graph(graph):
        hours = {
            step_id: (step.limit.working_hours if step.limit else 0.0) for step_id, (_, step) in parts.steps.items()
        }
        longest, path_ids = _longest_path(graph, hours)
        if longest > parts.promised.working_hours + 1e-9:
            at(
                ("limits", "promised"),
                f"the step limits on the path {' → '.join(path_ids)} add up to {format_working_hours(longest)}, "
                f"more than the promised case limit {parts.promised}: shorten those steps or raise the promise",
            )

    # the remedy (every process can refuse: at intake, 不予受理, and after review, 不予许可) -------------
    remedy = data.get("remedy")
    if remedy is None or (isinstance(remedy, str) and not remedy.strip()):
        at(
            ("remedy",) if "remedy" in data else ("key",),
            "no remedy: a refusal (不予受理, 不予许可) must tell the applicant where to apply for 行政复议 or "
            "bring 行政诉讼 (行政许可法 Art. 38); add e.g. remedy: 如不服本决定，可在收到之日起六十日内向某某市"
            "人民政府申请行政复议，或者在六个月内向某某区人民法院提起行政诉讼。",
            key="remedy" in data,
        )
    return problems


def _check_lookups(step: Any, loc: Loc, form_names: set[str], at: Callable[..., None]) -> None:
    """A look-up names a form field to look up by and the form fields it fills, each once in the step."""
    filled: dict[str, int] = {}
    for index, lookup in enumerate(step.lookups):
        where = (*loc, "lookups", index)
        if lookup.key not in form_names:
            at(
                (*where, "key"),
                f"step {step.id!r}: look-up key {lookup.key!r} is no form field{did_you_mean(lookup.key, form_names)}",
            )
        for position, name in enumerate(lookup.fill):
            if name not in form_names:
                at(
                    (*where, "fill", position),
                    f"step {step.id!r}: look-up fills {name!r}, which is no form field{did_you_mean(name, form_names)}",
                )
            elif name == lookup.key:
                at((*where, "fill", position), f"step {step.id!r}: a look-up cannot fill its own key {name!r}")
            elif name in filled:
                at(
                    (*where, "fill", position),
                    f"step {step.id!r}: {name!r} is filled by look-up {filled[name] + 1} already; "
                    "one field takes one source",
                )
            else:
                filled[name] = index


def _trial_run(expression: Any, fields: Mapping[str, FormField]) -> str | None:
    """Evaluate once with a value of each field's type: a TypeError means text is compared with a
    number…; past the bounds (text repeated with *) it would fail for every applicant."""
    try:
        expression.evaluate({key: field.sample for key, field in fields.items()})
    except TypeError as exc:
        return f"mixes types: {exc}"
    except ExpressionTooCostly as exc:
        return f"cannot be evaluated: {exc}"
    except Exception:
        return None
    return None


def _skip_gates(step_id: str, steps: Mapping[str, tuple[int, Step]], graph: nx.DiGraph) -> list[str]:
    """The conditional steps (with `when`) that can skip ``step_id`` by dead-path elimination: every
    predecessor of it can be skipped. Empty when one path to it always runs."""
    may_skip: dict[str, set[str] | None] = {}  # step → the `when` steps that can skip it, None if it always runs
    for node in nx.topological_sort(graph):
        found = steps.get(node)
        before = list(graph.predecessors(node))
        if found is not None and found[1].when is not None:
            may_skip[node] = {node}
        elif before and all(may_skip.get(b) is not None for b in before):
            may_skip[node] = set().union(*(may_skip[b] or set() for b in before))
        else:
            may_skip[node] = None
    gates: set[str] = set()
    for before in graph.predecessors(step_id):
        if may_skip.get(before) is None:
            return []
        gates |= may_skip[before] or set()
    return sorted(gates, key=lambda s: steps[s][0])


def _broken_keys(data: dict[str, Any]) -> set[str]:
    limits = data.get("limits")
    return {"limits"} if limits is not None and not isinstance(limits, dict) else set()


def _longest_path(graph: nx.DiGraph, hours: Mapping[str, float]) -> tuple[float, list[str]]:
    """Longest chain of step limits (the critical path) through the DAG."""
    best: dict[str, tuple[float, list[str]]] = {}
    for node in nx.topological_sort(graph):
        before = [best[p] for p in graph.predecessors(node)]
        total, path = max(before, key=lambda item: item[0]) if before else (0.0, [])
        best[node] = (total + hours.get(node, 0.0), [*path, node])
    return max(best.values(), key=lambda item: item[0], default=(0.0, []))


# ---------------------------------------------------------------------------------------------
# a tree of files


@dataclass
class Checked:
    """One file checked: the definition (None if it has problems), the problems, and what was checked:
    the text as read (publish stores these very bytes, not a second read) and the departments."""

    path: Path
    definition: Definition | None
    problems: list[Problem]
    text: str | None = None
    departments_file: Path | None = None
    departments: Mapping[str, Department] | None = None
    warnings: list[Problem] = field(default_factory=list)  # of a valid file


def definition_files(paths: Sequence[str | Path]) -> list[Path]:
    """Definition files named by the paths (folders are searched for *.yaml, reserved names skipped)."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(
                sorted(
                    p for p in path.rglob("*.y*ml") if p.suffix in (".yaml", ".yml") and p.name not in RESERVED_FILES
                )
            )
        else:
            files.append(path)
    return files


def find_departments_file(start: Path) -> Path | None:
    """``departments.yaml`` beside the definition or in a folder above it."""
    for folder in [start.parent if start.suffix else start, *start.resolve().parents]:
        candidate = folder / DEPARTMENTS_FILE
        if candidate.is_file():
            return candidate
    return None


def check_paths(paths: Sequence[str | Path], departments_file: str | Path | None = None) -> list[Checked]:
    """Check every definition below the paths; the departments file is checked once, too."""
    results: list[Checked] = []
    cache: dict[Path, tuple[dict[str, Department], list[Problem]]] = {}

    def departments_for(file: Path) -> tuple[Path | None, dict[str, Department], list[Problem]]:
        found = Path(departments_file) if departments_file else find_departments_file(file)
        if found is None:
            return (
                None,
                {},
                [
                    Problem(
                        str(file),
                        1,
                        1,
                        f"no {DEPARTMENTS_FILE} beside this file or above it: create one or pass --departments FILE",
                    )
                ],
            )
        key = found.resolve()
        if key not in cache:
            try:
                cache[key] = (load_departments(found), [])
            except SourceError as exc:
                cache[key] = ({}, list(exc.problems))
        return found, *cache[key]

    reported: set[Path] = set()
    for file in definition_files(paths):
        if not file.exists():
            results.append(Checked(file, None, [Problem(str(file), 1, 1, "no such file")]))
            continue
        found, departments, department_problems = departments_for(file)
        if department_problems and found is not None and found.resolve() not in reported:
            reported.add(found.resolve())
            results.append(Checked(found, None, department_problems))
        if found is None:
            results.append(Checked(file, None, department_problems))
            continue
        try:  # read once: what is checked is what a publisher stores, even if the file changes meanwhile
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            results.append(Checked(file, None, [Problem(str(file), 1, 1, f"cannot read the file: {exc}")]))
            continue
        try:
            definition, warnings = check_definition(file, departments, text=text)
        except SourceError as exc:
            results.append(Checked(file, None, list(exc.problems), text))
        else:
            results.append(Checked(file, definition, [], text, found.resolve(), departments, warnings))
    return results
