"""The engine: the state machine of cases and tasks, one transaction per transition."""

from .errors import Busy, Conflict, InvalidData, NotAllowed, NotFound, TongbanError
from .publish import publish_paths
from .service import Engine

__all__ = ["Busy", "Conflict", "Engine", "InvalidData", "NotAllowed", "NotFound", "TongbanError", "publish_paths"]
