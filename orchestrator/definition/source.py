"""YAML loading that keeps line and column numbers, and the ``file:line:column: message`` problem."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

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


class _Loader(yaml.CSafeLoader):
    """libyaml's parser (C) with YAML 1.2 booleans: only true/false, so yes/no/on/off stay text."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.CSafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


@dataclass
class YamlSource:
    """A parsed YAML document (plain dicts and lists) plus the means to point at any value in it."""

    file: str
    data: Any
    root: yaml.Node | None = field(default=None, repr=False)

    @classmethod
    def read(cls, path: str | Path, text: str | None = None) -> YamlSource:
        """Parse a file; raises SourceError with the YAML error's position on bad syntax or a key
        given twice in one mapping (which YAML would otherwise let the last one win silently)."""
        name = str(path)
        if text is None:
            try:
                text = Path(path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise SourceError([Problem(name, 1, 1, f"cannot read the file: {exc}")]) from None
        loader = _Loader(text)
        try:
            root = loader.get_single_node()
            data = loader.construct_document(root) if root is not None else None
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            what = " ".join(part for part in (exc.context, exc.problem) if part)
            raise SourceError([Problem(name, line, column, f"YAML syntax error: {what}")]) from None
        except yaml.YAMLError as exc:
            raise SourceError([Problem(name, 1, 1, f"YAML error: {exc}")]) from None
        finally:
            loader.dispose()
        duplicates = list(_duplicate_keys(name, root))
        if duplicates:
            raise SourceError(duplicates)
        return cls(name, data, root)

    def position(self, loc: Loc, *, key: bool = False) -> tuple[int, int]:
        """1-based line and column of the value at ``loc`` (of its key with ``key=True``).

        Walks as deep as the document allows and returns the deepest position found, so an
        error about a missing key points at the mapping that lacks it.
        """
        node = self.root
        line, column = 1, 1
        for depth, part in enumerate(loc):
            last = depth == len(loc) - 1
            if isinstance(node, yaml.MappingNode):
                pair = next(((k, v) for k, v in node.value if k.value == str(part)), None)
                if pair is None:
                    # pydantic puts the union tag (a step's kind) into error locations; skip it
                    if any(k.value == "kind" and v.value == part for k, v in node.value):
                        continue
                    break
                mark = (pair[0] if key and last else pair[1]).start_mark
                line, column = mark.line + 1, mark.column + 1
                node = pair[1]
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
                node = node.value[part]
                line, column = node.start_mark.line + 1, node.start_mark.column + 1
            else:
                break
        return line, column

    def problem(self, loc: Loc, message: str, *, key: bool = False) -> Problem:
        line, column = self.position(loc, key=key)
        return Problem(self.file, line, column, message)


def _duplicate_keys(name: str, node: yaml.Node | None) -> Iterator[Problem]:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    yield Problem(
                        name,
                        key.start_mark.line + 1,
                        key.start_mark.column + 1,
                        f"key {key.value!r} is given twice in this mapping (first at line {seen[key.value]}); keep one",
                    )
                seen.setdefault(key.value, key.start_mark.line + 1)
            yield from _duplicate_keys(name, value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _duplicate_keys(name, item)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when a close match exists, else an empty string."""
    match = difflib.get_close_matches(str(word), sorted(set(choices)), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""
