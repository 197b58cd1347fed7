"""Each module of ``web.pages`` and ``web.api`` defines ``router``; the package's router includes them all,
so a new page is a new module and nothing else changes."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

from fastapi import APIRouter


def gather(package: ModuleType, **options: object) -> APIRouter:
    router = APIRouter(**options)  # type: ignore[arg-type]
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        if hasattr(module, "router"):
            router.include_router(module.router)
    return router
