"""The engine: the state machine of cases and tasks, one transaction per transition, and its read side.

Layout (docs/engine.md, "Where things are"): ``service.Engine`` is the public face; ``unit`` the
transaction core (the only writer of cases, tasks and sign-offs); ``commands/`` the commands by concern;
``progress`` moves a case along its DAG; ``rules`` the states, transitions and who may take them;
``actions`` the buttons a person may press; ``read`` the named queries pages and workers read; ``sla``
the SLA sweep.
"""

from . import read
from .actions import ActionOption, AvailableActions
from .errors import Busy, Conflict, InvalidData, NotAllowed, NotFound, StoreFailure, TongbanError
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
    "ActionOption",
    "AvailableActions",
    "Busy",
    "CaseFilter",
    "Conflict",
    "Engine",
    "InvalidData",
    "NotAllowed",
    "NotFound",
    "StoreFailure",
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
