"""Typed errors: each says what was refused and what to do instead."""

from __future__ import annotations


class TongbanError(Exception):
    """Base of every refusal the engine makes; ``code`` maps to an HTTP status in the web layer."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(TongbanError):
    code = "not_found"


class Conflict(TongbanError):
    """Someone else changed the same thing first (two completions of one task, a stale version)."""

    code = "conflict"


class NotAllowed(TongbanError):
    """The transition is not allowed in the current state, or not by this person."""

    code = "not_allowed"


class InvalidData(TongbanError):
    """The input itself is wrong; ``problems`` lists every problem, not only the first."""

    code = "invalid_data"

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = problems or [message]
        super().__init__(message if problems is None else f"{message}: " + "; ".join(problems))


class Busy(TongbanError):
    """The database could not do it now (a deadlock, a serialization failure, a lock or pool timeout,
    the server unreachable); nothing was written. Try again after ``retry_after`` seconds: the web
    layer answers 503 with a ``Retry-After`` header."""

    code = "busy"

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StoreFailure(TongbanError):
    """A database error that is neither busy nor bad input: a bug or a broken server. Nothing was
    written; the web layer answers 500 and logs it."""

    code = "store_failure"
