"""Server-rendered pages (Jinja2 + htmx): one module per area, each with its ``router``."""

from __future__ import annotations

import sys

from ..routers import gather

router = gather(sys.modules[__name__], include_in_schema=False)
