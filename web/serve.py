"""The app factory uvicorn runs in each worker (`tongban serve`): settings from the environment."""

from __future__ import annotations

import os

from fastapi import FastAPI

from .app import create_app


def app() -> FastAPI:
    # the scheduler in every worker is harmless (jobs lock what they work on) but wasteful: `tongban serve`
    # asks for it with TONGBAN_WEB_JOBS=1; a second worker process sees the flag file taken and skips it
    jobs = os.environ.get("TONGBAN_WEB_JOBS") == "1" and _first_worker()
    return create_app(scheduler=jobs)


def _first_worker() -> bool:
    """True in one worker of this `tongban serve` only (the parent's pid names the claim)."""
    claim = f"/tmp/tongban-jobs-{os.getppid()}"
    try:
        os.close(os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        return True
    except FileExistsError:
        return False
