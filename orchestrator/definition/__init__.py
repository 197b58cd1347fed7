"""The spec side: definitions are data, loaded, checked and drawn with no database."""

from .expressions import Expression, ExpressionError
from .limits import Limit
from .model import (
    AcceptanceStep,
    ApprovalStep,
    AutoStep,
    Definition,
    Department,
    FormField,
    IssueStep,
    Material,
    NotifyStep,
    Step,
    SurveyStep,
)
from .source import Problem, SourceError
from .validator import check_paths, load_definition, load_departments

__all__ = [
    "AcceptanceStep",
    "ApprovalStep",
    "AutoStep",
    "Definition",
    "Department",
    "Expression",
    "ExpressionError",
    "FormField",
    "IssueStep",
    "Limit",
    "Material",
    "NotifyStep",
    "Problem",
    "SourceError",
    "Step",
    "SurveyStep",
    "check_paths",
    "load_definition",
    "load_departments",
]
