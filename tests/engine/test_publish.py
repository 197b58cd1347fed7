"""Publishing stores the very text it validated: a file changed while `publish` runs cannot go live
unvalidated (in a swap loop, 66 of 143 stored versions were texts the validator never saw)."""

from __future__ import annotations

import shutil
from pathlib import Path

import sqlalchemy as sa

from orchestrator.engine.publish import publish_paths
from orchestrator.store.models import DefinitionVersion

from ..conftest import FIXTURES
from .conftest import START


def test_the_stored_text_is_the_validated_text_even_if_the_file_changes_meanwhile(db, tmp_path, monkeypatch):
    shutil.copy(FIXTURES / "departments.yaml", tmp_path)
    path = tmp_path / "kaiban-mini.yaml"
    good = (FIXTURES / "kaiban-mini.yaml").read_text(encoding="utf-8")
    broken = good.replace("department: gaj", "department: nosuch")  # would be refused
    path.write_text(good, encoding="utf-8")
    read_text = Path.read_text

    def read_then_swap(self: Path, *args, **kwargs) -> str:
        """Reading the definition gives the good text, and an editor saves the broken one right after."""
        text = read_text(self, *args, **kwargs)
        if self == path:
            path.write_text(broken, encoding="utf-8")
        return text

    monkeypatch.setattr(Path, "read_text", read_then_swap)
    (result,) = publish_paths(db, [path], START)
    monkeypatch.undo()
    assert result.problems == [] and result.version == 1
    with db.connect() as conn:
        stored = conn.execute(sa.select(DefinitionVersion.source)).scalars().all()
    assert stored == [good]
    assert path.read_text(encoding="utf-8") == broken  # the swap did happen
