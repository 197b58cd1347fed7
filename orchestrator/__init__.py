"""Tongban (通办): the orchestration engine for cross-department 'one thing' (一件事) processes.

This package holds no web code and never imports Prefect: the CLI must start fast.
"""

__version__ = "0.1.0"
