"""The ``tongban`` command. Imports stay inside commands so ``tongban --help`` starts fast."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

DEFAULT_DEFINITIONS = "definitions"


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="tongban")
def main() -> None:
    """通办 Tongban: cross-department 'one thing' (一件事) processes."""


departments_option = click.option(
    "--departments",
    "departments_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="departments.yaml to check against (default: the one beside the definitions or above them)",
)


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@departments_option
def validate(paths: tuple[Path, ...], departments_file: Path | None) -> None:
    """Check definitions; print file:line:column: message for every problem (exit 1 if any)."""
    from .definition.validator import check_paths

    results = check_paths(paths or (Path(DEFAULT_DEFINITIONS),), departments_file)
    if not results:
        raise click.ClickException(f"no definition files under {', '.join(map(str, paths or ['definitions']))}")
    failed = False
    for result in results:
        if result.problems:
            failed = True
            for problem in result.problems:
                click.echo(str(problem), err=True)
        elif result.definition is not None:
            d = result.definition
            limit = f"承诺 {d.limits.promised}" if d.limits.promised else "即办件"
            click.echo(
                f"{result.path}: ok  {d.key} {d.name} · {len(d.steps)} steps · "
                f"{len(d.departments)} departments · {limit}"
            )
    if failed:
        sys.exit(1)


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True, help="OUT.svg, OUT.png or OUT.dot"
)
@departments_option
def render(file: Path, output: Path, departments_file: Path | None) -> None:
    """Draw a definition's flowchart (swimlanes per department)."""
    from .definition.source import SourceError
    from .definition.validator import find_departments_file, load_definition, load_departments
    from .render import FORMATS
    from .render import render as render_bytes

    fmt = output.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise click.BadParameter(f"write to a .svg, .png or .dot file, not {output.name}", param_hint="-o")
    found = departments_file or find_departments_file(file)
    try:
        departments = load_departments(found) if found else {}
        definition = load_definition(file, departments)
    except SourceError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        sys.exit(1)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(render_bytes(definition, departments, fmt))  # type: ignore[arg-type]
    click.echo(f"{file} → {output}")


@main.command()
def schema() -> None:
    """Print the JSON Schema of the definition language (for editor completion and checks)."""
    from .definition.model import Definition

    document = Definition.model_json_schema(mode="validation")
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = "Tongban process definition (一件事)"
    click.echo(json.dumps(document, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
