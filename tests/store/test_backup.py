"""`tongban db backup` and `tongban db restore`, on SQLite and PostgreSQL.

A backup finishes while other processes write through the Engine, and what it holds is a state the
database was in (every transition whole); a backup killed half-way leaves no backup file (and an
older one as it was); a restore brings back exactly what was backed up, refuses a file with no
schema in it (what a killed `sqlite3 .backup` left behind), and refuses while the database is in use.
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from orchestrator.calendar import BusinessCalendar
from orchestrator.engine import Engine
from orchestrator.engine.publish import publish_paths
from orchestrator.store import connect, upgrade
from orchestrator.store.backup import BackupError, backup, restore
from orchestrator.store.db import scratch_postgres
from orchestrator.store.migrate import head_revision
from orchestrator.store.models import Base

from ..conftest import FIXTURES, ROOT
from ..engine.conftest import START

FORM = {"company_name": "备份公司", "needs_seal": True, "employees": 2}
STAFF = {"zwfw": "zwfw1", "scjg": "scjg1", "gaj": "gaj1", "swj": "swj1", "rsj": "rsj1"}
WRITERS = 2


def tongban(*args: str, **options: Any) -> subprocess.Popen:
    """The `tongban` command in a process of its own (and its own process group)."""
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        **options,
    )


def finished(process: subprocess.Popen) -> tuple[int, str]:
    out, _ = process.communicate(timeout=240)
    return process.returncode, out


def prepare(url: str) -> None:
    """Schema, the test definitions and one member of staff per department."""
    db = connect(url)
    upgrade(db)
    publish_paths(db, [FIXTURES], START)
    engine = Engine(db, BusinessCalendar(), lambda: START)
    for department, user in STAFF.items():
        engine.add_user(user, user, [(department, "handler")])
    engine.close()
    db.dispose()


def start_case(engine: Engine, applicant: str) -> int:
    """A kaiban-mini case accepted, its licence approved: three branches ready."""
    case_id = engine.submit_case("kaiban-mini", {"id": applicant, "name": "申请人"}, FORM, ["id_card", "lease"])
    engine.accept_case(case_id, "zwfw1")
    with engine.db.connect() as conn:
        licence = conn.execute(
            sa.text("SELECT id FROM tasks WHERE case_id = :c AND step_id = 'licence'"), {"c": case_id}
        ).scalar_one()
    engine.complete_task(licence, "scjg1")
    return case_id


def _writer(url: str, name: str, stop: Any, progress: Any, out: Any) -> None:
    """Cases, one transition after another, until told to stop."""
    try:
        db = connect(url)
        engine = Engine(db, BusinessCalendar(), lambda: START)
        while not stop.is_set():
            start_case(engine, f"{name}-{progress.value}")
            progress.value += 1
        engine.close()
        db.dispose()
        out.put((name, None))
    except BaseException:
        out.put((name, traceback.format_exc()))


def rows(url: str) -> dict[str, list[tuple]]:
    """Every row of every table, in order: what a restore must bring back exactly."""
    db = connect(url)
    try:
        with db.connect() as conn:
            return {
                table.name: [tuple(r) for r in conn.execute(sa.select(table).order_by(*table.primary_key.columns))]
                for table in Base.metadata.sorted_tables
            }
    finally:
        db.dispose()


def assert_whole_transitions(url: str) -> int:
    """Every case in the database is as a committed transition left it: submitted with its event,
    accepted with its acceptance completed, licensed with its three branches ready. Returns the count."""
    db = connect(url)
    try:
        with db.connect() as conn:
            cases = conn.execute(sa.text("SELECT id, state FROM cases")).all()
            for case_id, state in cases:
                events = conn.execute(sa.text("SELECT kind FROM events WHERE case_id = :c"), {"c": case_id})
                kinds = [kind for (kind,) in events]
                assert kinds.count("submitted") == 1
                steps = dict(
                    conn.execute(sa.text("SELECT step_id, state FROM tasks WHERE case_id = :c"), {"c": case_id}).all()
                )
                if state == "submitted":
                    assert steps == {"accept": "ready"}
                elif steps.get("licence") == "completed":
                    assert state == "in_progress"
                    assert {s: steps[s] for s in ("seal", "invoice", "social")} == dict.fromkeys(
                        ("seal", "invoice", "social"), "ready"
                    )
                else:
                    assert state == "accepted" and steps == {"accept": "completed", "licence": "ready"}
            return len(cases)
    finally:
        db.dispose()


@contextlib.contextmanager
def another_database(url: str, tmp_path: Path):
    """An empty database of the same kind as ``url``: a new SQLite file or a new PostgreSQL database."""
    if url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'other.sqlite'}"
    else:
        with scratch_postgres("tongban_other") as other:
            yield other


def backup_name(url: str, tmp_path: Path, name: str = "backup") -> Path:
    return tmp_path / f"{name}.{'sqlite' if url.startswith('sqlite') else 'dump'}"


def partials(dest: Path) -> list[Path]:
    return list(dest.parent.glob(f".{dest.name}.partial-*"))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------------------------------------


def test_a_backup_finishes_while_processes_write_and_holds_whole_transitions(empty_url, tmp_path):
    prepare(empty_url)
    context = multiprocessing.get_context("spawn")
    stop, out = context.Event(), context.Queue()
    progress = [context.Value("i", 0) for _ in range(WRITERS)]
    writers = [
        context.Process(target=_writer, args=(empty_url, f"w{n}", stop, progress[n], out)) for n in range(WRITERS)
    ]
    for writer in writers:
        writer.start()
    try:
        deadline = time.monotonic() + 120
        while min(p.value for p in progress) < 3 and time.monotonic() < deadline:  # everyone is writing
            time.sleep(0.05)
        assert min(p.value for p in progress) >= 3, "the writers did not get going"
        before = sum(p.value for p in progress)
        dest = backup_name(empty_url, tmp_path)
        code, output = finished(tongban("db", "backup", str(dest), "--url", empty_url))
        during = sum(p.value for p in progress) - before
    finally:
        stop.set()
        reports = [out.get(timeout=120) for _ in writers]
        for writer in writers:
            writer.join(60)
    assert [error for _, error in reports] == [None] * WRITERS, reports
    assert code == 0, output
    assert f"→ {dest}: revision {head_revision()}" in output
    assert "verified:" in output
    assert not partials(dest)
    written = sum(p.value for p in progress)
    with another_database(empty_url, tmp_path) as copy:
        restore(copy, dest)
        held = assert_whole_transitions(copy)
        assert before <= held <= written, (before, held, written, during)
        db = connect(copy)  # and the copy is a working database
        engine = Engine(db, BusinessCalendar(), lambda: START)
        case_id = start_case(engine, "after-the-restore")
        engine.close()
        db.dispose()
        assert assert_whole_transitions(copy) == held + 1
        assert case_id > 0


def _fill(url: str, megabytes: int) -> None:
    """History rows enough to make a backup take a while (one case, many events)."""
    db = connect(url)
    engine = Engine(db, BusinessCalendar(), lambda: START)
    case_id = start_case(engine, "bulk")
    engine.close()
    padding = "备" * 330  # about 1 KB in UTF-8
    events = Base.metadata.tables["events"]
    row = {"case_id": case_id, "kind": "note", "at": START, "data": {"padding": padding}}
    with db.begin() as conn:
        for _ in range(megabytes):
            conn.execute(events.insert(), [row] * 1000)
    db.dispose()


def _kill_once_copying(process: subprocess.Popen, dest: Path, sig: int) -> None:
    deadline = time.monotonic() + 120
    while not partials(dest):
        assert process.poll() is None, process.communicate()[0]
        assert time.monotonic() < deadline, "the backup never started writing"
        time.sleep(0.001)
    os.killpg(process.pid, sig)  # the command and its pg_dump, as cron's `timeout` does
    process.communicate(timeout=120)


def test_a_backup_killed_half_way_leaves_no_backup_file(empty_url, tmp_path):
    prepare(empty_url)
    yesterday = backup_name(empty_url, tmp_path, "yesterday")
    backup(empty_url, yesterday)
    kept = digest(yesterday)
    _fill(empty_url, 20)

    dest = backup_name(empty_url, tmp_path)
    killed = tongban("db", "backup", str(dest), "--url", empty_url)
    _kill_once_copying(killed, dest, signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    assert not dest.exists()  # a half-written copy never has the backup's name

    again = tongban("db", "backup", str(yesterday), "--url", empty_url)
    _kill_once_copying(again, yesterday, signal.SIGTERM)  # `timeout 60 tongban db backup …` in cron
    assert again.returncode != 0
    assert digest(yesterday) == kept  # the older backup is as it was
    assert not partials(yesterday)  # and the interrupted one cleaned up after itself

    backup(empty_url, dest)
    assert dest.exists()
    assert not partials(dest)  # the killed backup's leftover is gone too


def test_restore_brings_back_exactly_what_was_backed_up(empty_url, tmp_path):
    prepare(empty_url)
    db = connect(empty_url)
    engine = Engine(db, BusinessCalendar(), lambda: START)
    first = start_case(engine, "A")
    submitted = engine.submit_case("kaiban-mini", {"id": "B", "name": "乙"}, FORM, ["id_card"])
    engine.close()
    db.dispose()
    backed_up = rows(empty_url)
    dest = backup_name(empty_url, tmp_path)
    assert backup(empty_url, dest).counts["cases"] == 2

    db = connect(empty_url)  # life goes on after the backup
    engine = Engine(db, BusinessCalendar(), lambda: START)
    engine.refuse_case(submitted, "zwfw1", "材料不全", "可申请行政复议")
    start_case(engine, "C")
    engine.close()
    db.dispose()
    assert rows(empty_url) != backed_up

    code, output = finished(tongban("db", "restore", str(dest), "--url", empty_url, "--yes"))
    assert code == 0, output
    assert "restored from" in output and f"revision {head_revision()}" in output
    assert rows(empty_url) == backed_up

    db = connect(empty_url)  # and it works: the restored case takes the next transition
    engine = Engine(db, BusinessCalendar(), lambda: START)
    engine.accept_case(submitted, "zwfw1", deferred=["lease"], deferred_limit="1d")
    engine.close()
    db.dispose()
    assert first in {case_id for case_id, *_ in rows(empty_url)["cases"]}


def test_restore_refuses_a_file_with_no_schema_and_changes_nothing(empty_url, tmp_path):
    """What a cron `timeout` left of `sqlite3 .backup`: a file that passes integrity_check, no tables."""
    prepare(empty_url)
    before = rows(empty_url)
    empty = tmp_path / "killed-backup.sqlite"
    with contextlib.closing(sqlite3.connect(empty)) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    if not empty_url.startswith("sqlite"):
        empty.write_bytes(b"PGDMP")  # a dump cut short after its first bytes
    with pytest.raises(BackupError) as refused:
        restore(empty_url, empty)
    assert ("holds no Tongban schema" if empty_url.startswith("sqlite") else "pg_restore") in str(refused.value)
    assert rows(empty_url) == before


HOLD_OPEN = {  # a process that keeps a connection open, as a web server's pool does
    "sqlite": "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('SELECT count(*) FROM cases')",
    "postgres": "import psycopg, sys; c = psycopg.connect(sys.argv[1]); c.execute('SELECT count(*) FROM cases')",
}


def test_restore_is_refused_while_another_process_uses_the_database(empty_url, tmp_path):
    prepare(empty_url)
    dest = backup_name(empty_url, tmp_path)
    backup(empty_url, dest)
    sqlite = empty_url.startswith("sqlite")
    target = sa.engine.make_url(empty_url)
    where = target.database if sqlite else target.set(drivername="postgresql").render_as_string(hide_password=False)
    script = HOLD_OPEN["sqlite" if sqlite else "postgres"] + "; print('open', flush=True); sys.stdin.read()"
    holder = subprocess.Popen(
        [sys.executable, "-c", script, str(where)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        during = rows(empty_url)
        code, output = finished(tongban("db", "restore", str(dest), "--url", empty_url, "--yes"))
        assert code == 1
        assert "stop every Tongban process that uses it" in output
        if sqlite:
            assert f"in use by process {holder.pid}" in output
        else:
            assert "1 other session(s) are connected" in output
        assert rows(empty_url) == during
    finally:
        holder.communicate("", timeout=60)  # end of its input: it closes and exits
    restore(empty_url, dest)  # once it is stopped, the restore goes through


def test_backup_into_a_missing_folder_says_so(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    prepare(url)
    with pytest.raises(BackupError, match=r"folder .*no-such-folder does not exist: create it first"):
        backup(url, tmp_path / "no-such-folder" / "backup.sqlite")
