"""YAML loading that keeps line and column numbers, and the ``file:line:column: message`` problem."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

Loc = Sequence[str | int]


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong in a source file, printed as ``file:line:column: message`` (1-based)."""

    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class SourceError(Exception):
    """Raised with every problem found, not only the first."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass
class YamlSource:
    """A parsed YAML document plus the means to point at any value in it."""

    file: str
    data: Any

    @classmethod
    def read(cls, path: str | Path, text: str | None = None) -> YamlSource:
        """Parse a file; raises SourceError with the YAML error's position on bad syntax."""
        name = str(path)
        if text is None:
            try:
                text = Path(path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise SourceError([Problem(name, 1, 1, f"cannot read the file: {exc}")]) from None
        yaml = YAML(typ="rt")
        try:
            data = yaml.load(text)
        except MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            what = " ".join(part for part in (exc.context, exc.problem) if part)
            raise SourceError([Problem(name, line, column, f"YAML syntax error: {what}")]) from None
        except YAMLError as exc:
            raise SourceError([Problem(name, 1, 1, f"YAML error: {exc}")]) from None
        return cls(name, data)

    def position(self, loc: Loc, *, key: bool = False) -> tuple[int, int]:
        """1-based line and column of the value at ``loc`` (of its key with ``key=True``).

        Walks as deep as the document allows and returns the deepest position found, so an
        error about a missing key points at the mapping that lacks it.
        """
        node = self.data
        line, column = 1, 1
        for depth, part in enumerate(loc):
            last = depth == len(loc) - 1
            if isinstance(node, CommentedMap):
                if part not in node:
                    # pydantic puts the union tag (a step's kind) into error locations; skip it
                    if node.get("kind") == part:
                        continue
                    break
                at = node.lc.key(part) if (key and last) else node.lc.value(part)
                if at is None or at[0] is None:
                    at = node.lc.key(part)
                line, column = at[0] + 1, at[1] + 1
                node = node[part]
            elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
                at = node.lc.item(part)
                line, column = at[0] + 1, at[1] + 1
                node = node[part]
            else:
                break
        return line, column

    def problem(self, loc: Loc, message: str, *, key: bool = False) -> Problem:
        line, column = self.position(loc, key=key)
        return Problem(self.file, line, column, message)


def plain(node: Any) -> Any:
    """ruamel's commented containers as plain dicts and lists (pydantic and speed both prefer them)."""
    if isinstance(node, dict):
        return {k: plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v) for v in node]
    return node


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when a close match exists, else an empty string."""
    match = difflib.get_close_matches(str(word), sorted(set(choices)), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""
