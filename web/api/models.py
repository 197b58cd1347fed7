"""Pydantic models shared by the API modules: the error body every 4xx/5xx answers with."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    error: str = Field(description="a stable code: not_found, not_allowed, conflict, invalid_data, busy, …")
    message: str = Field(description="what was refused and what to do instead")
    details: Any = Field(None, description="every problem found, for invalid_data")


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in {
        401: "no or unknown token",
        403: "not allowed for this role",
        404: "unknown, or not within your departments",
        409: "not allowed in the current state, or changed meanwhile",
        413: "request body too large",
        422: "bad input",
        429: "too many attempts",
        503: "database busy or down: try again after Retry-After seconds",
    }.items()
}
