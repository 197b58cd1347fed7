"""The engine: the state machine of cases and tasks, one transaction per transition, and its read side."""

from . import read
from .errors import Busy, Conflict, InvalidData, NotAllowed, NotFound, TongbanError
from .publish import publish_paths
from .read import (
    CaseFilter,
    TaskFilter,
    case_detail,
    case_path,
    claimed,
    dashboard,
    done,
    progress,
    queue,
    search_cases,
)
from .service import Engine

__all__ = [
    "Busy",
    "CaseFilter",
    "Conflict",
    "Engine",
    "InvalidData",
    "NotAllowed",
    "NotFound",
    "TaskFilter",
    "TongbanError",
    "case_detail",
    "case_path",
    "claimed",
    "dashboard",
    "done",
    "progress",
    "publish_paths",
    "queue",
    "read",
    "search_cases",
]
