"""The definition language as typed, immutable models (the spec side; no state lives here).

A definition is one 一件事: a one-form (一表式), a material list, and a DAG of steps, each owned
by a department, with time limits in working days. See docs/definition-language.md.
"""

from __future__ import annotations

import math
from datetime import date
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
    model_validator,
)

from .expressions import Expression
from .limits import Limit

DEFINITION_KEY_PATTERN = r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$"
IDENT_PATTERN = r"^[a-z][a-z0-9_]*$"
LIMIT_PATTERN = r"^\d+(\.\d+)?[dhn]$"

Ident = Annotated[str, Field(pattern=IDENT_PATTERN)]
TEXT_LIMIT = 2_000  # characters of a text form field, unless its max_length is lower


def _parse_limit(value: Any) -> Limit:
    if isinstance(value, Limit):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f"bad limit {value!r}: add a unit, e.g. {value}d (working days) or {value}h")
    return Limit.parse(value)


def _parse_expression(value: Any) -> Expression:
    if isinstance(value, Expression):
        return value
    if isinstance(value, bool):  # YAML `when: true` is a constant condition, almost surely a slip
        raise ValueError("write a condition over form fields (e.g. needs_seal), not a constant")
    return Expression.parse(value)


LimitField = Annotated[
    Limit,
    PlainValidator(_parse_limit),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": LIMIT_PATTERN,
            "description": "d = working days, h = working hours, n = natural days; fractions allowed",
            "examples": ["1d", "0.5d", "4h", "7n"],
        }
    ),
]
ExpressionField = Annotated[
    Expression,
    PlainValidator(_parse_expression),
    PlainSerializer(lambda e: e.source, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "description": "boolean expression over form field keys",
            "examples": ["needs_seal"],
        }
    ),
]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


FieldType = Literal["text", "int", "number", "bool", "date", "choice"]
_DEFAULT_TYPES: dict[str, tuple[type, ...]] = {
    "text": (str,),
    "int": (int,),
    "number": (int, float),
    "bool": (bool,),
    "date": (str,),
    "choice": (str,),
}


class FormField(_Spec):
    """One field of the shared form (一表式)."""

    key: Ident
    label: str
    type: FieldType = "text"
    required: bool = False
    default: Any = None
    min: float | None = Field(None, allow_inf_nan=False)
    max: float | None = Field(None, allow_inf_nan=False)
    options: list[str] | None = None
    max_length: int | None = Field(
        None,
        ge=1,
        le=TEXT_LIMIT,
        description=f"most characters a text field takes (default and ceiling: {TEXT_LIMIT})",
    )
    help: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _date_default_as_text(cls, data: Any) -> Any:
        # YAML reads an unquoted 2026-01-01 as a date; a date field keeps its default as ISO text
        if isinstance(data, dict) and data.get("type") == "date" and isinstance(data.get("default"), date):
            return {**data, "default": data["default"].isoformat()}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> FormField:
        if self.type == "choice" and not self.options:
            raise ValueError("a choice field lists its options, e.g. options: [甲, 乙]")
        if self.options is not None and self.type != "choice":
            raise ValueError("options only apply to type choice")
        if (self.min is not None or self.max is not None) and self.type not in ("int", "number"):
            raise ValueError("min and max only apply to int and number fields")
        if self.max_length is not None and self.type != "text":
            raise ValueError("max_length only applies to text fields")
        if self.default is not None:
            allowed = _DEFAULT_TYPES[self.type]
            wrong = not isinstance(self.default, allowed) or (
                self.type in ("int", "number")
                and (isinstance(self.default, bool) or not math.isfinite(self.default) or abs(self.default) >= 2**63)
            )
            if wrong or (self.options and self.default not in self.options):
                raise ValueError(f"default {self.default!r} is not a valid {self.type}")
            if self.type == "text" and len(self.default) > (self.max_length or TEXT_LIMIT):
                raise ValueError(f"default is longer than the {self.max_length or TEXT_LIMIT} characters allowed")
        return self

    @property
    def sample(self) -> Any:
        """A value of the field's type (used to try expressions at load time)."""
        return {"text": "", "int": 0, "number": 0.0, "bool": False, "date": "2026-01-01"}.get(
            self.type, (self.options or [""])[0]
        )


class Material(_Spec):
    """One item of the material list (材料清单)."""

    key: Ident
    label: str
    required: bool = True
    deferrable: bool = Field(False, description="容缺受理: may be supplied after acceptance")
    source: Literal["applicant", "government", "third_party"] = "applicant"
    in_person: bool = Field(
        False,
        description="须到窗口出示原件或本人到场核验: the material cannot be handed in online (the 办事指南 then "
        "does not call the 一件事 网上办)",
    )


class Limits(_Spec):
    promised: LimitField | None = Field(None, description="承诺时限, the SLA that is monitored")
    statutory: LimitField | None = Field(None, description="法定时限, the legal cap")
    extension: LimitField | None = Field(
        None,
        description="延长审批 allowance beyond the statutory limit (Art. 42: 10d; joint handling: 15d). "
        "Default: 15d when more than one department takes part, else 10d",
    )
    warning: float = Field(
        0.25, gt=0, lt=1, description="share of the limit left at which the SLA turns yellow (warning)"
    )
    returns: int = Field(
        1,
        ge=0,
        le=20,
        description="how often a case may be returned to the applicant for 补正 after acceptance (the clock "
        "stops each time); default once",
    )


class Guide(_Spec):
    """What the 办事指南 (service guide) says that the rest of the definition cannot: each left out is said
    to be unstated in the guide, never guessed."""

    covers: str | None = Field(
        None, min_length=1, description="what the 一件事 covers, in a few sentences (default: the summary)"
    )
    who: str | None = Field(None, min_length=1, description="申请对象: who may apply")
    fees: str | None = Field(
        None, min_length=1, description="收费标准: the fees, or 不收费 when nothing is charged (unstated: not guessed)"
    )


class Certificate(_Spec):
    key: Ident
    name: str
    issuer: Ident
    steps: list[Ident] = Field(
        default_factory=list,
        description="the issuer's steps whose approval produces it (any one suffices); default: the issuer's "
        "step whose id is the certificate's key, else every step of the issuer",
    )


class _Step(_Spec):
    id: Ident
    name: str
    department: Ident
    after: list[Ident] = Field(default_factory=list)
    when: ExpressionField | None = None
    limit: LimitField | None = None
    lead: bool = Field(False, description="牵头: this department leads its parallel block")
    role: Ident | None = None
    description: str | None = None
    on_reject: Literal["stop", "continue"] = Field(
        "stop", description="continue: a refusal here is recorded and the other branches go on"
    )
    editable: list[Ident] = Field(default_factory=list, description="form fields this step may change")


class AcceptanceStep(_Step):
    """综合受理: the window checks materials, accepts (容缺 where allowed) or refuses."""

    kind: Literal["acceptance"]
    auto_accept: bool = Field(
        False,
        description="网上申报自动受理: an application with every required material is accepted by the system "
        "when it arrives; any other goes to the window",
    )


class SurveyStep(_Step):
    """联合踏勘: one joint site visit; every participant department signs off."""

    kind: Literal["survey"]
    participants: list[Ident] = Field(min_length=2)


class ApprovalStep(_Step):
    """One department's review, optionally through sign-off levels or a countersign."""

    kind: Literal["approval"]
    deemed_consent: bool = Field(
        False,
        description="逾期视为同意: a department that has not answered by the step's limit is deemed to consent; "
        "the step completes as approved by the rule (local law only; needs a limit)",
    )
    review_chain: list[str] = Field(default_factory=list, description="e.g. [承办, 审核, 批准]")
    sign: Literal["all", "any"] | None = Field(None, description="会签 (all) or 或签 (any) among signers")
    signers: list[Ident] = Field(default_factory=list, description="roles that countersign")

    @model_validator(mode="after")
    def _countersign(self) -> ApprovalStep:
        if self.sign is not None and len(self.signers) < 2:
            raise ValueError(f"sign: {self.sign} needs at least two signers (roles)")
        if self.signers and self.sign is None:
            raise ValueError("signers need sign: all (会签) or sign: any (或签)")
        if len(set(self.review_chain)) != len(self.review_chain):
            raise ValueError("review_chain repeats a level")
        return self


class Lookup(_Spec):
    """A shared-data look-up (数据共享) an automatic step makes before its rule decides: the record of
    ``source`` for the value of form field ``key``; each field in ``fill`` takes the record's value of
    the same name (a record not found leaves them as they are)."""

    source: Ident = Field(description="a shared-data source the operator configures (TONGBAN_LOOKUP_SOURCES)")
    key: Ident = Field(description="the form field whose value is looked up, e.g. id_number")
    fill: list[Ident] = Field(min_length=1, description="form fields set from the record, e.g. [hukou_local]")


class AutoStep(_Step):
    """No human in the loop (秒批, shared-data lookup): the rule decides."""

    kind: Literal["auto"]
    lookups: list[Lookup] = Field(
        default_factory=list, description="shared-data look-ups made before the rule (a worker runs the step)"
    )
    rule: ExpressionField
    result_field: Ident | None = Field(None, description="bool form field that receives the result")
    on_false: Literal["reject", "continue"] = "reject"


class IssueStep(_Step):
    """证照发放 / 统一出件: certificates (e-certificates too) and how they reach the applicant."""

    kind: Literal["issue"]
    certificates: list[Certificate] = Field(default_factory=list)
    delivery: list[Literal["window", "mail", "online"]] = Field(default_factory=lambda: ["window"])
    auto_issue: bool = Field(
        False,
        description="在线签发电子证照: the system issues the certificates electronically (delivery online) when the "
        "step is reached, unless 容缺 materials are still owed",
    )


class NotifyStep(_Step):
    kind: Literal["notify"]
    channels: list[Literal["sms", "site", "email"]] = Field(default_factory=lambda: ["site"])
    message: str | None = None


Step = Annotated[
    AcceptanceStep | SurveyStep | ApprovalStep | AutoStep | IssueStep | NotifyStep,
    Field(discriminator="kind"),
]
STEP_KINDS = ("acceptance", "survey", "approval", "auto", "issue", "notify")


class Definition(_Spec):
    """One 一件事, immutable once published."""

    key: str = Field(pattern=DEFINITION_KEY_PATTERN, description="stable id; the file is named <key>.yaml")
    name: str
    summary: str = ""
    tags: list[str] = Field(default_factory=list)
    case_kind: Literal["promised", "instant"] = Field(
        "promised", description="promised = 承诺件 (timed); instant = 即办件"
    )
    limits: Limits = Field(default_factory=Limits)
    remedy: str | None = Field(
        None,
        description="what a refused applicant may do and where (行政复议 / 行政诉讼, 行政许可法 Art. 38): told with "
        "every 不予受理 and 不予许可 that names none, and with automatic (秒批) refusals",
    )
    form: list[FormField] = Field(default_factory=list)
    materials: list[Material] = Field(default_factory=list)
    steps: list[Step] = Field(min_length=1)
    guide: Guide = Field(
        default_factory=Guide,
        description="办事指南: what it covers, who may apply, fees (each optional, never guessed)",
    )

    @cached_property
    def steps_by_id(self) -> dict[str, Step]:
        return {step.id: step for step in self.steps}

    @cached_property
    def fields_by_key(self) -> dict[str, FormField]:
        return {field.key: field for field in self.form}

    @cached_property
    def successors(self) -> dict[str, list[str]]:
        """Step id → the steps that wait on it, in file order."""
        result: dict[str, list[str]] = {step.id: [] for step in self.steps}
        for step in self.steps:
            for before in step.after:
                result[before].append(step.id)
        return result

    def producing_steps(self, certificate: Certificate) -> list[Step]:
        """The steps whose approval produces ``certificate`` (any one suffices): those it names, else its
        issuer's step whose id is its key, else every step of its issuer. The engine issues it by this
        rule and the flowchart draws it conditional by it."""
        if certificate.steps:
            return [self.steps_by_id[step_id] for step_id in certificate.steps]
        own = self.issuer_steps(certificate.issuer)
        return [step for step in own if step.id == certificate.key] or own

    def issuer_steps(self, department: str) -> list[Step]:
        return [step for step in self.steps if decides(step, department)]

    @property
    def entry(self) -> Step:
        return next(step for step in self.steps if step.kind == "acceptance")

    @cached_property
    def departments(self) -> list[str]:
        """Every department taking part, in order of first appearance."""
        seen: dict[str, None] = {}
        for step in self.steps:
            seen[step.department] = None
            for participant in getattr(step, "participants", ()):
                seen[participant] = None
        return list(seen)


PASSING_KINDS = frozenset({"acceptance", "issue", "notify"})  # steps that decide nothing themselves


def decides(step: Any, department: str) -> bool:
    """Whether ``department`` takes a decision in ``step``: it owns it or takes part (a survey's or a
    会签's participant). The window's acceptance, issuing and notices decide nothing."""
    return step.kind not in PASSING_KINDS and (
        step.department == department or department in getattr(step, "participants", ())
    )


HANDLER_ROLE = "handler"  # every department has it: its staff who work its queue (承办人)


class Department(_Spec):
    code: Ident
    name: str
    parent: Ident | None = None
    supervisor_role: Ident = Field(description="role that receives escalations (督办)")
    roles: list[Ident] = Field(default_factory=list, description="roles besides handler and supervisor_role")

    @property
    def all_roles(self) -> set[str]:
        """Every role a member of the department may hold."""
        return {HANDLER_ROLE, self.supervisor_role, *self.roles}


class DepartmentsFile(_Spec):
    departments: list[Department] = Field(min_length=1)
