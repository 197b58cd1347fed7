"""The 办事指南 (service guide) of a definition: what the public reads before applying.

Everything here is derived from the definition (and the list of service centres): what the 一件事
covers, who may apply, the materials (容缺 marked), the steps in the order they run and the departments
that work them, the promised and statutory limits, fees, where to apply, and four labels —
马上办, 网上办, 就近办, 一次办 — each by a rule stated in ``LABEL_RULES`` (shown on the guide page and in
docs/definition-language.md). What the definition does not say (who may apply, fees) is said to be
unstated, never guessed. No web imports: the web renders a :class:`ServiceGuide`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .definition.limits import HOURS_PER_WORKING_DAY, Limit
from .definition.model import Definition, Department

KIND_LABELS = {
    "acceptance": "综合受理",
    "survey": "联合踏勘",
    "approval": "审批",
    "auto": "自动办理（秒批）",
    "issue": "出件",
    "notify": "通知",
}
SOURCE_LABELS = {
    "applicant": "申请人提供",
    "government": "部门共享获取，免提交",
    "third_party": "第三方机构出具",
}
DELIVERY_LABELS = {"window": "窗口领取", "mail": "免费邮寄", "online": "电子证照在线送达"}
CENTRE_LEVELS = {"city": "市级", "district": "区级", "community": "街道（社区）"}

MASHANG, WANGSHANG, JIUJIN, YICI = "马上办", "网上办", "就近办", "一次办"
# The rules as the guide page states them, in plain words (docs/definition-language.md §12 gives them
# with the definition's keys); each Label also says why it does or does not hold for its definition.
LABEL_RULES = {
    MASHANG: "即办件；或承诺时限不超过 1 个工作日；或没有须人工审批、联合踏勘的步骤，全部由系统自动比对办理（秒批）。",
    WANGSHANG: "所有材料都可在网上提交（没有须到窗口出示原件或本人到场核验的材料），且办理结果都能在线送达或免费邮寄。",
    JIUJIN: "全市通办：任何政务服务中心的综合窗口都受理本事项；本市设有区级或街道（社区）级服务中心时，可就近办理。",
    YICI: "没有须申请人到现场配合的联合踏勘，且办理结果都能邮寄或在线送达（不必再到窗口取件）：申请人最多到窗口一次。",
}


@dataclass(frozen=True)
class Label:
    """One of 马上办 / 网上办 / 就近办 / 一次办: whether it applies to this 一件事, and why."""

    name: str
    applies: bool
    why: str
    rule: str


@dataclass(frozen=True)
class GuideMaterial:
    key: str
    label: str
    required: bool
    deferrable: bool  # 容缺受理: may be handed in after acceptance
    source: str
    source_label: str
    in_person: bool


@dataclass(frozen=True)
class GuideStep:
    id: str
    name: str
    kind: str
    kind_label: str
    department: str
    department_name: str
    limit: str | None  # 1工作日, 4工作小时 …
    condition: str | None  # 若 是否刻制公章 (form labels, not keys)
    lead: bool
    participants: tuple[str, ...] = ()  # survey: department names
    description: str | None = None


@dataclass(frozen=True)
class Stage:
    """Steps that start together (one 并联 block when more than one)."""

    number: int
    steps: tuple[GuideStep, ...]

    @property
    def parallel(self) -> bool:
        return len(self.steps) > 1


@dataclass(frozen=True)
class GuideDepartment:
    code: str
    name: str
    lead: bool
    steps: tuple[str, ...]  # step names it works


@dataclass(frozen=True)
class GuideCentre:
    code: str
    name: str
    level: str
    level_label: str


@dataclass(frozen=True)
class ServiceGuide:
    key: str
    version: int | None
    name: str
    summary: str
    covers: str | None  # guide.covers, else None (the page shows the summary)
    services: tuple[str, ...]  # the names of the steps that decide something (approval, survey, auto)
    who: str | None  # None: the definition does not say
    fees: str | None  # None: the definition does not say (never guessed)
    case_kind: str
    case_kind_label: str
    promised: str | None  # label, e.g. 1工作日
    promised_days: float | None  # in working days (natural days at 5/7 of a working day)
    statutory: str | None
    statutory_days: float | None
    materials: tuple[GuideMaterial, ...]
    stages: tuple[Stage, ...]
    departments: tuple[GuideDepartment, ...]
    certificates: tuple[tuple[str, str], ...]  # (certificate name, issuing department name)
    delivery: tuple[str, ...]  # labels, in the definition's order, without repeats
    online_accept: bool  # 网上申报材料齐全的由系统自动受理 (acceptance auto_accept)
    instant_approval: bool  # an auto step decides (秒批) somewhere
    centres: tuple[GuideCentre, ...]
    labels: tuple[Label, ...]
    remedy: str | None
    tags: tuple[str, ...] = field(default_factory=tuple)

    @property
    def deferrable(self) -> tuple[GuideMaterial, ...]:
        return tuple(m for m in self.materials if m.deferrable)

    def label(self, name: str) -> Label:
        return next(label for label in self.labels if label.name == name)


def working_days(limit: Limit | None) -> float | None:
    """A limit in working days (4h → 0.5; 7n → 5, the validator's comparison rate for natural days)."""
    return None if limit is None else round(limit.working_hours / HOURS_PER_WORKING_DAY, 2)


def service_guide(
    definition: Definition,
    departments: Mapping[str, Department] | None = None,
    centres: Iterable[Any] = (),
    version: int | None = None,
) -> ServiceGuide:
    """The guide of one definition. ``centres``: the service centres (objects with code, name, level)."""
    departments = departments or {}
    levels = list(CENTRE_LEVELS)
    centre_list = tuple(
        GuideCentre(c.code, c.name, c.level, CENTRE_LEVELS.get(c.level, c.level))
        for c in sorted(centres, key=lambda c: (levels.index(c.level) if c.level in levels else len(levels), c.code))
    )

    def name_of(code: str) -> str:
        return departments[code].name if code in departments else code

    stages = _stages(definition, name_of)
    issue_steps = [s for s in definition.steps if s.kind == "issue"]
    delivery: dict[str, None] = {}
    certificates: list[tuple[str, str]] = []
    for step in issue_steps:
        for way in step.delivery:
            delivery.setdefault(DELIVERY_LABELS[way], None)
        certificates.extend((c.name, name_of(c.issuer)) for c in step.certificates)
    lead = {s.department for s in definition.steps if s.lead}
    worked: dict[str, list[str]] = {}
    for step in definition.steps:
        worked.setdefault(step.department, []).append(step.name)
        for participant in getattr(step, "participants", ()):
            if participant != step.department:
                worked.setdefault(participant, []).append(step.name)
    guide_departments = tuple(
        GuideDepartment(code, name_of(code), code in lead, tuple(worked.get(code, ())))
        for code in definition.departments
    )
    materials = tuple(
        GuideMaterial(m.key, m.label, m.required, m.deferrable, m.source, SOURCE_LABELS[m.source], m.in_person)
        for m in definition.materials
    )
    limits = definition.limits
    return ServiceGuide(
        key=definition.key,
        version=version,
        name=definition.name,
        summary=definition.summary,
        covers=definition.guide.covers,
        services=tuple(s.name for s in definition.steps if s.kind in ("approval", "survey", "auto")),
        who=definition.guide.who,
        fees=definition.guide.fees,
        case_kind=definition.case_kind,
        case_kind_label="承诺件" if definition.case_kind == "promised" else "即办件",
        promised=limits.promised.label if limits.promised else None,
        promised_days=working_days(limits.promised),
        statutory=limits.statutory.label if limits.statutory else None,
        statutory_days=working_days(limits.statutory),
        materials=materials,
        stages=stages,
        departments=guide_departments,
        certificates=tuple(certificates),
        delivery=tuple(delivery),
        online_accept=bool(getattr(definition.entry, "auto_accept", False)),
        instant_approval=any(s.kind == "auto" for s in definition.steps),
        centres=centre_list,
        labels=labels(definition, centre_list),
        remedy=definition.remedy,
        tags=tuple(definition.tags),
    )


# ------------------------------------------------------------------------------------------------
# the four labels


def labels(definition: Definition, centres: Iterable[Any] = ()) -> tuple[Label, ...]:
    """马上办, 网上办, 就近办, 一次办 by the rules of ``LABEL_RULES``, each with the reason for this definition."""
    return (_mashang(definition), _wangshang(definition), _jiujin(centres), _yici(definition))


def _mashang(definition: Definition) -> Label:
    if definition.case_kind == "instant":
        return Label(MASHANG, True, "即办件：当场办结。", LABEL_RULES[MASHANG])
    promised = definition.limits.promised
    if promised is not None and promised.working_hours <= HOURS_PER_WORKING_DAY:
        return Label(MASHANG, True, f"承诺时限 {promised.label}，不超过 1 个工作日。", LABEL_RULES[MASHANG])
    deciding = [s for s in definition.steps if s.kind in ("approval", "survey", "auto")]
    manual = [s for s in deciding if s.kind != "auto"]
    if deciding and not manual:
        return Label(MASHANG, True, "需要决定的步骤全部由系统自动办理（秒批）。", LABEL_RULES[MASHANG])
    limit = f"承诺时限 {promised.label}" if promised else "没有承诺时限"
    names = "、".join(s.name for s in manual[:3]) + ("等" if len(manual) > 3 else "")
    return Label(MASHANG, False, f"{limit}，超过 1 个工作日；{names}由人工办理。", LABEL_RULES[MASHANG])


def _undeliverable(definition: Definition) -> list[Any]:
    """Issue steps whose results can only be collected at the window."""
    return [s for s in definition.steps if s.kind == "issue" and not {"mail", "online"} & set(s.delivery)]


def _wangshang(definition: Definition) -> Label:
    in_person = [m.label for m in definition.materials if m.in_person]
    window_only = _undeliverable(definition)
    reasons = []
    if in_person:
        reasons.append(f"须到窗口出示原件或本人到场核验：{'、'.join(in_person)}")
    if window_only:
        reasons.append(f"{'、'.join(s.name for s in window_only)}只能到窗口领取")
    if reasons:
        return Label(WANGSHANG, False, "；".join(reasons) + "。", LABEL_RULES[WANGSHANG])
    return Label(
        WANGSHANG,
        True,
        "材料都可在网上提交（或由部门共享获取），办理结果可在线送达或邮寄。",
        LABEL_RULES[WANGSHANG],
    )


def _jiujin(centres: Iterable[Any]) -> Label:
    near = [c for c in centres if c.level in ("district", "community")]
    if near:
        names = "、".join(c.name for c in near[:4]) + ("等" if len(near) > 4 else "")
        return Label(JIUJIN, True, f"全市通办：可在{names}的综合窗口办理。", LABEL_RULES[JIUJIN])
    return Label(JIUJIN, False, "本市尚未登记区级或街道（社区）级服务中心。", LABEL_RULES[JIUJIN])


def _yici(definition: Definition) -> Label:
    surveys = [s.name for s in definition.steps if s.kind == "survey"]
    window_only = _undeliverable(definition)
    reasons = []
    if surveys:
        reasons.append(f"{'、'.join(surveys)}须申请人在现场配合")
    if window_only:
        reasons.append(f"{'、'.join(s.name for s in window_only)}须再到窗口领取")
    if reasons:
        return Label(YICI, False, "；".join(reasons) + "。", LABEL_RULES[YICI])
    return Label(YICI, True, "提交申请后不必再到窗口：结果可邮寄或在线送达。", LABEL_RULES[YICI])


# ------------------------------------------------------------------------------------------------
# steps in the order they run


def _stages(definition: Definition, name_of: Any) -> tuple[Stage, ...]:
    """Steps grouped by how far they are from acceptance (the longest chain of `after`): steps of one
    group start together, in parallel (并联)."""
    depth: dict[str, int] = {}

    def depth_of(step_id: str, seen: frozenset[str] = frozenset()) -> int:
        if step_id not in depth:
            step = definition.steps_by_id[step_id]
            before = [b for b in step.after if b in definition.steps_by_id and b not in seen]
            depth[step_id] = 1 + max((depth_of(b, seen | {step_id}) for b in before), default=-1)
        return depth[step_id]

    groups: dict[int, list[GuideStep]] = {}
    for step in definition.steps:
        groups.setdefault(depth_of(step.id), []).append(
            GuideStep(
                id=step.id,
                name=step.name,
                kind=step.kind,
                kind_label=KIND_LABELS[step.kind],
                department=step.department,
                department_name=name_of(step.department),
                limit=step.limit.label if step.limit else None,
                condition=readable(step.when.source, definition) if step.when is not None else None,
                lead=step.lead,
                participants=tuple(name_of(p) for p in getattr(step, "participants", ())),
                description=step.description,
            )
        )
    return tuple(Stage(number, tuple(groups[d])) for number, d in enumerate(sorted(groups), start=1))


_WORDS = {"and": "且", "or": "或", "not": "非", "in": "属于", "True": "是", "False": "否", "None": "空"}
_OPERATORS = {">=": "≥", "<=": "≤", "!=": "≠", "==": "="}
_PHRASES = {"not in": "不属于", "is not": "不是", "is": "是"}
_TOKEN = re.compile(r"'[^']*'|\"[^\"]*\"|\bnot\s+in\b|\bis\s+not\b|[A-Za-z_][A-Za-z0-9_]*|>=|<=|!=|==")


def readable(expression: str, definition: Definition) -> str:
    """A condition in words: form labels instead of keys, operators in Chinese (quoted text kept)."""
    fields = definition.fields_by_key

    def word(match: re.Match[str]) -> str:
        token = match[0]
        if token[0] in "'\"":
            return token
        phrase = " ".join(token.split())
        if phrase in _PHRASES:
            return _PHRASES[phrase]
        if token in _OPERATORS:
            return _OPERATORS[token]
        return fields[token].label if token in fields else _WORDS.get(token, token)

    return _TOKEN.sub(word, expression)
