"""Screenshots of the managers' dashboard on realistic demo data (not a test: pytest does not collect it).

    python -m tests.web.dashboard_screenshots docs/screenshots [DATA_FOLDER]

Makes a fresh SQLite database, runs a few hundred cases of every shipped definition through the engine
with simulated people (``orchestrator.simulation.demo.seed_demo``, the data of `make run`), serves the
web on it and, logged in as the manager, saves into the given folder ``dashboard.png`` (总览与预警),
``heatmap.png`` (开办企业's bottleneck heat map: median working time against the slowest step),
``ratings.png`` and ``targets.png``. The simulation submits every application at a window without a
centre; here each is given a channel as a city would see them (about half online, the rest at one of the
three centres' windows, a few at a department's own counter), so the plan's targets have something to
count. ``DATA_FOLDER`` keeps the database (made once, reused when there) for another run;
``DASHBOARD_PARTS=<folder>`` also saves each page a screen at a time.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from orchestrator.calendar import TZ
from orchestrator.engine import Engine
from orchestrator.engine.read import refresh_work_summary
from orchestrator.settings import Settings, connect_database, load_calendar
from orchestrator.simulation.demo import seed_demo
from orchestrator.simulation.simulate import SimClock
from orchestrator.store import upgrade
from orchestrator.store.models import User
from web.accounts import add_centre, open_accounts
from web.app import create_app
from web.demo import CENTRES, CITY_PEOPLE, WINDOWS

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 20, 15, 30, tzinfo=TZ)  # a Friday afternoon
PASSWORD = "screenshot-password"
CASES = 360
PARTS = Path(os.environ["DASHBOARD_PARTS"]) if os.environ.get("DASHBOARD_PARTS") else None


def with_channels(engine: Engine, rng: random.Random) -> None:
    """Give each application the channel and centre a city would see (the simulation leaves them out)."""
    submit = engine.submit_case

    def submit_case(*args: Any, **kwargs: Any) -> int:
        roll = rng.random()
        if roll < 0.55:
            kwargs.update(channel="online", centre=None)
        else:
            centre = rng.choice(("city", "city", "futian", "futian-lianhua")) if roll < 0.95 else None
            kwargs.update(channel="window", centre=centre)
        return submit(*args, **kwargs)

    engine.submit_case = submit_case  # type: ignore[method-assign]


def build(home: Path) -> Settings:
    settings = Settings(home=ROOT, database_url=f"sqlite:///{home / 'demo.sqlite'}", secret_key="screenshots")
    if (home / "demo.sqlite").exists():
        return settings
    db = connect_database(settings)
    upgrade(db)
    engine = Engine(db, load_calendar(settings), SimClock(NOW))
    with_channels(engine, random.Random(7))
    report = seed_demo(engine, ROOT / "definitions", NOW, cases=CASES, weeks=8)
    print(f"demo: {report.cases} cases, {report.rated} rated, states {report.by_state}", flush=True)
    for user_id, name, _ in CITY_PEOPLE:
        engine.add_user(user_id, name, [])
    for code, name, level, parent in CENTRES:
        add_centre(db, code, name, level, parent)
    with db.connect() as conn:
        people = list(conn.execute(User.__table__.select().with_only_columns(User.id)).scalars())
    city = {u: roles for u, _, roles in CITY_PEOPLE}
    open_accounts(db, [(u, city.get(u) or (["window"] if u in WINDOWS else []), WINDOWS.get(u)) for u in people],
                  PASSWORD, "screenshots")  # fmt: skip
    with db.begin() as conn:
        refresh_work_summary(conn, NOW)  # what the nightly job does
    engine.close()
    db.dispose()
    return settings


def serve(settings: Settings) -> tuple[str, Any]:
    import socket

    import uvicorn

    db = connect_database(settings)
    engine = Engine(db, load_calendar(settings), lambda: NOW)
    app = create_app(settings, engine=engine)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server


def shoot(url: str, folder: Path) -> None:
    from playwright.sync_api import sync_playwright

    period = "start=2026-02-20&end=2026-03-20"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(base_url=url, locale="zh-CN", viewport={"width": 1440, "height": 900})
        page.goto("/login")
        page.get_by_label("用户名").fill("manager")
        page.get_by_label("密码").fill(PASSWORD)
        page.get_by_role("button", name="登录").click()
        page.wait_for_url(lambda u: "/login" not in u)
        for name, path in (
            ("dashboard", f"/dashboard?{period}"),
            ("heatmap", f"/dashboard/heatmap/kaiban-qiye?{period}&measure=median&compare=relative"),
            ("ratings", f"/dashboard/ratings?{period}"),
            ("targets", f"/dashboard/targets?{period}"),
        ):
            started = time.perf_counter()
            page.goto(path)
            page.wait_for_load_state("networkidle")
            if name == "heatmap":  # the whole chart on the page
                page.get_by_role("button", name="整图缩放至页面宽度").click()
            print(f"{path}: {1000 * (time.perf_counter() - started):.0f} ms in the browser", flush=True)
            page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
            if PARTS:  # the page a screen at a time, to read it at full size
                height = page.evaluate("document.documentElement.scrollHeight")
                for part, top in enumerate(range(0, height, 900)):
                    clip = {"x": 0, "y": top, "width": 1440, "height": min(900, height - top)}
                    page.screenshot(path=str(PARTS / f"{name}-{part}.png"), full_page=True, clip=clip)
        browser.close()


def main(argv: list[str]) -> None:
    folder = Path(argv[0] if argv else "docs/screenshots").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(argv[1]) if len(argv) > 1 else Path(scratch)
        home.mkdir(parents=True, exist_ok=True)
        settings = build(home)
        url, server = serve(settings)
        try:
            shoot(url, folder)
        finally:
            server.should_exit = True
    print(f"screenshots in {folder}")


if __name__ == "__main__":
    main(sys.argv[1:])
