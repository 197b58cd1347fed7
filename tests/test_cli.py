"""The tongban command as designers use it."""

from __future__ import annotations

import json
import shutil

from click.testing import CliRunner

from orchestrator.cli import main

from .conftest import DEFINITIONS, FIXTURES

REAL = ["kaiban-qiye", "xinshenger-chusheng", "gongcheng-shigong-xuke", "ershoufang-guohu", "tuixiu",
        "laonianren-youdaizheng"]  # fmt: skip


def test_validate_the_shipped_definitions():
    result = CliRunner().invoke(main, ["validate", str(DEFINITIONS)])
    assert result.exit_code == 0, result.output
    for key in REAL:
        assert f"{key}.yaml: ok  {key} " in result.output


def test_validate_reports_every_problem_and_exits_1(tmp_path):
    shutil.copy(FIXTURES / "departments.yaml", tmp_path)
    broken = (FIXTURES / "kaiban-mini.yaml").read_text(encoding="utf-8")
    broken = broken.replace("department: gaj", "department: gongan").replace("after: [licence], limit: 2h}", "}")
    (tmp_path / "kaiban-mini.yaml").write_text(broken, encoding="utf-8")
    result = CliRunner().invoke(main, ["validate", str(tmp_path)])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert any(":19:" in line and "unknown department 'gongan'" in line for line in lines), lines
    assert any("more than one entry step" in line for line in lines), lines


def test_validate_without_departments_file_says_what_to_do(tmp_path):
    shutil.copy(FIXTURES / "kaiban-mini.yaml", tmp_path)
    result = CliRunner().invoke(main, ["validate", str(tmp_path / "kaiban-mini.yaml")])
    assert result.exit_code == 1
    assert "no departments.yaml beside this file or above it: create one or pass --departments FILE" in result.output


def test_render_writes_each_format(tmp_path):
    for suffix, magic in ((".svg", b"<?xml"), (".png", b"\x89PNG"), (".dot", b"digraph")):
        out = tmp_path / f"k{suffix}"
        result = CliRunner().invoke(main, ["render", str(FIXTURES / "kaiban-mini.yaml"), "-o", str(out)])
        assert result.exit_code == 0, result.output
        assert out.read_bytes().startswith(magic)


def test_render_refuses_an_unknown_suffix(tmp_path):
    result = CliRunner().invoke(main, ["render", str(FIXTURES / "kaiban-mini.yaml"), "-o", str(tmp_path / "k.gif")])
    assert result.exit_code == 2
    assert "write to a .svg, .png or .dot file" in result.output


def test_schema_is_json_schema_of_the_language():
    result = CliRunner().invoke(main, ["schema"])
    schema = json.loads(result.output)
    assert schema["title"] == "Tongban process definition (一件事)"
    assert set(schema["required"]) == {"key", "name", "steps"}
    step_schema = schema["properties"]["steps"]["items"]
    tags = set(step_schema["discriminator"]["mapping"])
    assert tags == {"acceptance", "survey", "approval", "auto", "issue", "notify"}
    assert set(schema["$defs"]["Guide"]["properties"]) == {"covers", "who", "fees"}
    assert schema["$defs"]["Material"]["properties"]["in_person"]["default"] is False


def test_schema_offers_max_length_for_text_fields():
    schema = json.loads(CliRunner().invoke(main, ["schema"]).output)
    max_length = schema["$defs"]["FormField"]["properties"]["max_length"]
    assert {"type": "integer", "minimum": 1, "maximum": 2000} in max_length["anyOf"]
