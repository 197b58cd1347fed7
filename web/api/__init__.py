"""The REST API under ``/api`` (docs/api.md): one module per resource, each with its ``router``."""

from __future__ import annotations

import sys

from ..routers import gather

router = gather(sys.modules[__name__], prefix="/api")
