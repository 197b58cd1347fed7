"""The engine: the state machine of cases and tasks, one transaction per transition.

Layout (docs/engine.md, "Where things are"): ``service.Engine`` is the public face; ``unit`` the
transaction core (the only writer of cases, tasks and sign-offs); ``commands/`` the commands by concern;
``progress`` moves a case along its DAG; ``rules`` the states, transitions and who may take them;
``actions`` the buttons a person may press; ``sla`` the SLA sweep.
"""

from .actions import ActionOption, AvailableActions
from .errors import Busy, Conflict, InvalidData, NotAllowed, NotFound, StoreFailure, TongbanError
from .publish import publish_paths
from .service import Engine

__all__ = [
    "ActionOption",
    "AvailableActions",
    "Busy",
    "Conflict",
    "Engine",
    "InvalidData",
    "NotAllowed",
    "NotFound",
    "StoreFailure",
    "TongbanError",
    "publish_paths",
]
