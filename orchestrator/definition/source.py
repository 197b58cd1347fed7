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
    """One thing wrong in a source file, printed as ``file:line:column: message`` (1-based).

    A ``warning`` is printed as ``file:line:column: warning: message`` and refuses nothing: the file
    is valid, but probably not what its designer meant."""

    file: str
    line: int
    column: int
    message: str
    warning: bool = False

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {'warning: ' if self.warning else ''}{self.message}"


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
        if "&" in text and "*" in text:  # anchors and aliases: bound what they expand to first
            _check_aliases(name, text)
        loader = _Loader(text)
        try:
            root = loader.get_single_node()
            data = loader.construct_document(root) if root is not None else None
        except yaml.MarkedYAMLError as exc:
            line, column, message = plain_syntax_error(exc, text)
            raise SourceError([Problem(name, line, column, f"YAML syntax error: {message}")]) from None
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

    def problem(self, loc: Loc, message: str, *, key: bool = False, warning: bool = False) -> Problem:
        line, column = self.position(loc, key=key)
        return Problem(self.file, line, column, message, warning)


ALIAS_LIMIT = 10_000  # values aliases may add to one document (a whole definition has a few hundred)
NESTING_LIMIT = 64  # lists and mappings inside each other


def _check_aliases(name: str, text: str) -> None:
    """Refuse a document whose aliases would expand past ALIAS_LIMIT values ("billion laughs": nine
    lines of nested aliases expand to a billion values, and validating one took minutes), or that
    nests past NESTING_LIMIT. Counts on the parser's events, so nothing is expanded to count it."""
    sizes: dict[str, int] = {}  # anchor → values in what it names, aliases expanded
    open_: list[list[Any]] = []  # [anchor, values so far] of each collection being read
    added = 0
    try:
        for event in yaml.parse(text, Loader=_Loader):
            if isinstance(event, yaml.CollectionStartEvent):
                open_.append([event.anchor, 1])
                if len(open_) > NESTING_LIMIT:
                    mark = event.start_mark
                    message = f"lists and mappings nest more than {NESTING_LIMIT} deep here: flatten the document"
                    raise SourceError([Problem(name, mark.line + 1, mark.column + 1, message)])
                continue
            if isinstance(event, yaml.CollectionEndEvent):
                anchor, size = open_.pop()
            elif isinstance(event, yaml.ScalarEvent):
                anchor, size = event.anchor, 1
            elif isinstance(event, yaml.AliasEvent):
                anchor, size = None, sizes.get(event.anchor or "", 1)
                added += size
                if added > ALIAS_LIMIT:
                    mark = event.start_mark
                    message = (
                        f"aliases expand this document to more than {ALIAS_LIMIT:,} extra values "
                        f"(*{event.anchor} here stands for {size:,}): write the repeated part out, "
                        "or nest fewer aliases"
                    )
                    raise SourceError([Problem(name, mark.line + 1, mark.column + 1, message)])
            else:
                continue
            if anchor:
                sizes[anchor] = size
            if open_:
                open_[-1][1] += size
    except yaml.YAMLError:
        return  # a syntax error: the parse proper reports it with its position


def plain_syntax_error(exc: yaml.MarkedYAMLError, text: str) -> tuple[int, int, str]:
    """(line, column, message) of a YAML syntax error in plain words, with an indentation hint:
    libyaml says "did not find expected '-' indicator" where a designer needs "this line is not lined
    up with the list above it"."""
    problem, context = exc.problem or "", exc.context or ""
    at = exc.problem_mark or exc.context_mark
    line, column = (at.line + 1, at.column + 1) if at else (1, 1)
    start = exc.context_mark
    start_line, start_column = (start.line + 1, start.column + 1) if start else (line, column)
    lines = text.splitlines()
    current = lines[line - 1] if 0 < line <= len(lines) else ""
    char = current[column - 1] if 0 < column <= len(current) else ""
    starts_in = _first_column(lines, line)
    if "tab" in problem or "'\\t'" in problem:
        message = "a tab character: YAML indents with spaces only; replace the tab with spaces"
    elif problem == "did not find expected '-' indicator":
        item = lines[start_line - 1] if 0 < start_line <= len(lines) else ""
        block_item = ": " in item and not item.lstrip(" -").startswith(("{", "["))
        keys = f" and their keys in column {_first_column(lines, start_line, after_dash=True)}" if block_item else ""
        if starts_in == start_column:
            message = (
                f"line {line} is in the column of the list that starts at line {start_line} but has no '-': "
                "start it with '- ' to make it an item, or indent it under the item it belongs to"
            )
        else:
            message = (
                f"line {line} does not line up with the list that starts at line {start_line}: its items start "
                f"with '-' in column {start_column}{keys}, this line in column {starts_in}. Indent it like the "
                "line it belongs with (spaces only), or start a new item with '- '"
            )
    elif problem == "did not find expected key" and "block mapping" in context:
        message = _misplaced_in_mapping(lines, line, column, char, start_line)
    elif problem.startswith("mapping values are not allowed"):
        message = (
            "a ':' that cannot start a value here: put a value that contains ': ' in quotes "
            '(name: "甲: 乙"), or, if this line holds a key, line it up with the keys above it'
            + _indent_hint(lines, line)
        )
    elif problem == "could not find expected ':'" and start is not None:
        line, column = start_line, start_column  # the line with the bare word, not the one after it
        message = (
            "a key without ':' (write key: value), or a line that continues the one above with the wrong indentation"
        )
    elif "flow mapping" in context or "flow sequence" in context:
        closer, kind = ("}", "{…}") if "mapping" in context else ("]", "[…]")
        message = (
            f"the {kind} opened at line {start_line}, column {start_column} is not closed here: put ',' between "
            f"its entries, close it with '{closer}', and quote a value that contains , [ ] {{ }} or ': '"
        )
    elif "quoted scalar" in context and "end of stream" in problem:
        line, column = start_line, start_column
        message = "a quoted text is never closed: add the closing quote"
    elif "unknown escape" in problem:
        message = "an unknown escape (\\…) in double quotes: write the backslash twice, or use single quotes"
    elif problem == "found undefined alias":
        message = "an alias (*name) with no anchor (&name) before it"
    elif "another document" in problem:
        message = "a second document ('---'): a file holds one document; remove the '---' line"
    else:
        message = " ".join(part for part in (context, problem) if part)
    return line, column, message


def _misplaced_in_mapping(lines: list[str], line: int, column: int, char: str, start_line: int) -> str:
    """What libyaml calls "did not find expected key" while reading a block mapping."""
    if char and char in "]}":
        return f"an unmatched '{char}': remove it, or open the list or mapping it closes"
    above = next((n for n in range(line - 1, 0, -1) if lines[n - 1].strip()), 0)
    if (
        above
        and lines[above - 1].rstrip().endswith((": {}", ": []"))
        and _first_column(lines, line) > _first_column(lines, above)
    ):  # `years: {}` kept, and the entries written below it
        empty = lines[above - 1].rstrip()[-2:]
        return (
            f"line {line} is indented under line {above}, whose value is already given as {empty} (empty): "
            f"remove the {empty} so that the indented lines below become its value"
        )
    if char == "-":
        above = next((n for n in range(line - 1, 0, -1) if lines[n - 1].lstrip().startswith("- ")), None)
        if above is not None and _first_column(lines, above) != column:
            return (
                f"this list item is not lined up with the one at line {above}: that '-' is in column "
                f"{_first_column(lines, above)}, this one in column {column} (spaces only)"
            )
        keys_in = _first_column(lines, start_line, after_dash=True)
        return (
            f"a list item ('-') where a key was expected: the keys of the mapping that starts at line "
            f"{start_line} are in column {keys_in}; indent the list under the key it belongs to"
        )
    return (
        f"line {line} does not line up with the mapping that starts at line {start_line}: its keys start in "
        f"column {_first_column(lines, start_line, after_dash=True)}, this line in column "
        f"{_first_column(lines, line)}. Line it up (spaces only)"
    )


def _first_column(lines: list[str], line: int, *, after_dash: bool = False) -> int:
    """1-based column of the first character on the line (after a leading '- ' if asked)."""
    if not 0 < line <= len(lines):
        return 1
    text = lines[line - 1]
    column = len(text) - len(text.lstrip(" "))
    if after_dash and text[column:].startswith("- "):
        rest = text[column + 1 :]
        column += 1 + len(rest) - len(rest.lstrip(" "))
    return column + 1


def _indent_hint(lines: list[str], line: int) -> str:
    before = line - 1
    while before > 0 and (not lines[before - 1].strip() or lines[before - 1].lstrip().startswith("#")):
        before -= 1
    if before <= 0 or _first_column(lines, line) == _first_column(lines, before, after_dash=True):
        return ""
    return (
        f" (line {line} starts in column {_first_column(lines, line)}, line {before} "
        f"in column {_first_column(lines, before, after_dash=True)})"
    )


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
