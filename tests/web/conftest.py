"""Web fixtures: the app on the engine fixture's database (SQLite and PostgreSQL), a TestClient, log-ins
for every role, and for browser tests a live uvicorn server and the system Chromium (headless).

People (from tests/engine/conftest.py): ``<code>1..3`` handlers and ``<code>_boss`` supervisors of zwfw,
scjg, gaj, swj, rsj, zjj, xf; here ``zwfw1`` and ``zwfw2`` also work windows (centres ``city`` and
``district``), and ``manager``, ``designer``, ``admin`` hold the city-wide roles. Every password: PASSWORD.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from orchestrator.settings import Settings
from web.accounts import add_centre, open_accounts
from web.app import create_app

from ..engine.conftest import (  # noqa: F401  (fixtures shared with the engine tests)
    IN_CI,
    START,
    clock,
    db,
    engine,
    fixture_definitions,
    postgres_url,
    sqlite_template,
)

PASSWORD = "correct-horse-battery"
CITY_PEOPLE = {"manager": ["manager"], "designer": ["designer"], "admin": ["admin"]}
WINDOWS = {"zwfw1": "city", "zwfw2": "district"}
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def web_settings(tmp_path) -> Settings:
    return Settings(home=tmp_path, secret_key="test-secret-key", calendar_file="none", login_max_failures=5)


@pytest.fixture
def app(engine, web_settings):  # noqa: F811
    add_centre(engine.db, "city", "市民中心", "city")
    add_centre(engine.db, "district", "福田区政务服务中心", "district", "city")
    for user_id in CITY_PEOPLE:
        engine.add_user(
            user_id, {"manager": "效能监察员", "designer": "流程设计员", "admin": "系统管理员"}[user_id], []
        )
    with engine.db.connect() as conn:
        from sqlalchemy import select

        from orchestrator.store.models import User

        people = list(conn.execute(select(User.id)).scalars())
    open_accounts(
        engine.db,
        [(u, CITY_PEOPLE.get(u) or (["window"] if u in WINDOWS else []), WINDOWS.get(u)) for u in people],
        PASSWORD,
        "test",
    )
    return create_app(web_settings, engine=engine)


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


def bearer(client: TestClient, user: str, password: str = PASSWORD) -> dict[str, str]:
    """Authorization headers of a fresh API session of ``user``."""
    answer = client.post("/api/session", json={"username": user, "password": password})
    assert answer.status_code == 201, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def log_in_page(client: TestClient, user: str, password: str = PASSWORD) -> None:
    """Log the TestClient in through the log-in form (it keeps the session cookie)."""
    answer = client.post("/login", data={"username": user, "password": password, "next": "/"}, follow_redirects=False)
    assert answer.status_code == 303, answer.text


def csrf_of(page_html: str) -> str:
    import re

    found = re.search(r'name="csrf-token" content="([^"]*)"', page_html)
    assert found and found.group(1), "the page carries no CSRF token"
    return found.group(1)


# ---------------------------------------------------------------------------------------------------
# a real server and a real browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def live_url(app) -> Iterator[str]:
    """The app served by uvicorn on a free port, in a thread of this process."""
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="session")
def browser():
    """Headless system Chromium driven by Playwright. Missing in CI: the run fails (make test installs it)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing: `make test` installs Debian's chromium (apt-get install chromium)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-background-networking", "--disable-component-update"],
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser, live_url):
    context = browser.new_context(base_url=live_url, locale="zh-CN", viewport={"width": 1360, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


def browser_log_in(page, user: str, password: str = PASSWORD) -> None:
    page.goto("/login")
    page.get_by_label("用户名").fill(user)
    page.get_by_label("密码").fill(password)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(lambda url: "/login" not in url)


SCREENSHOTS = Path(os.environ.get("TONGBAN_SCREENSHOTS", "")) if os.environ.get("TONGBAN_SCREENSHOTS") else None
