"""系统管理 (/admin) over HTTP on both databases: an admin manages people, roles, memberships, passwords,
blocks, API tokens, service centres and reads the audit and access logs; nobody else gets in."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from web.accounts import account_of, list_accounts, record_view

from ..engine.helpers import submit_kaiban
from .conftest import PASSWORD, bearer, csrf_of, log_in_page

ADMIN_PAGES = ["/admin", "/admin/people/new", "/admin/people/scjg1", "/admin/tokens", "/admin/centres", "/admin/audit"]


def _admin(client: TestClient) -> str:
    """Log the client in as the admin; returns the CSRF token of the session."""
    log_in_page(client, "admin")
    return csrf_of(client.get("/admin").text)


def _person(**fields: object) -> dict[str, object]:
    return {
        "user_id": "scjg9",
        "name": "新来的办理人",
        "password": "a-good-password",
        "password_again": "a-good-password",
        "roles": [],
        "memberships": ["scjg:handler"],
        "centre": "",
        **fields,
    }


@pytest.mark.parametrize("user", ["scjg1", "scjg_boss", "zwfw1", "manager", "designer"])
def test_nobody_but_an_admin_gets_in(client, user):
    log_in_page(client, user)
    token = csrf_of(client.get("/login").text)
    for path in ADMIN_PAGES:
        answer = client.get(path)
        assert answer.status_code == 403 and "没有权限" in answer.text, path
    for path in ("/admin/people", "/admin/people/scjg2/active", "/admin/tokens", "/admin/centres"):
        answer = client.post(path, data={"csrf_token": token, "active": "0", "user_id": user, "name": "x"})
        assert answer.status_code == 403, path
    assert account_of(client.app.state.services.engine.db, "scjg2").active


def test_without_a_session_the_admin_pages_ask_for_a_log_in(client):
    answer = client.get("/admin/tokens", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/login?next=/admin/tokens"


def test_the_admin_sees_everyone_with_their_roles_departments_and_centre(client):
    _admin(client)
    page = client.get("/admin")
    assert page.status_code == 200
    for user in ("scjg1", "zwfw1", "manager", "admin"):
        assert f"<code>{user}</code>" in page.text
    assert "市场监督管理局：承办" in page.text and "市场监督管理局：负责人" in page.text
    assert "综合窗口" in page.text and "效能监察" in page.text
    found = client.get("/admin", params={"q": "scjg_b"})
    assert "<code>scjg_boss</code>" in found.text and "<code>scjg1</code>" not in found.text
    rows = client.get("/admin", params={"part": "rows"}, headers={"HX-Request": "true"})
    assert rows.text.lstrip().startswith("<tr>") and "<html" not in rows.text


def test_the_admin_adds_a_person_who_can_then_log_in(client, engine):
    token = _admin(client)
    form = client.get("/admin/people/new")
    assert 'value="gaj:duty_a"' in form.text and 'value="gaj:gaj_supervisor"' in form.text  # roles of the table
    answer = client.post(
        "/admin/people",
        data={
            **_person(roles=["window"], memberships=["scjg:handler", "gaj:duty_a"], centre="city"),
            "csrf_token": token,
        },
        follow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/admin/people/scjg9?done=added"
    assert "已添加人员" in client.get(answer.headers["location"]).text
    account = account_of(engine.db, "scjg9")
    assert account.roles == ["window"] and account.centre == "city" and account.active
    assert account.memberships == [("gaj", "duty_a"), ("scjg", "handler")]
    assert [c.actor for c in engine.staff("scjg9").changes] == ["admin"]  # through set_memberships
    me = client.get("/api/me", headers=bearer(client, "scjg9", "a-good-password")).json()
    assert me["departments"] == ["gaj", "scjg"] and set(me["roles"]) == {"staff", "window"}
    assert "添加人员" in client.get("/admin/audit").text


def test_a_wrong_person_form_comes_back_with_each_problem_next_to_its_field(client, engine):
    token = _admin(client)
    answer = client.post(
        "/admin/people",
        data={
            **_person(user_id="bad id!", name="", password="short", roles=["window"], memberships=["scjg:boss"]),
            "csrf_token": token,
        },
    )
    assert answer.status_code == 422
    errors = dict(re.findall(r'<p class="field-error" id="error-(\w+)">([^<]*)</p>', answer.text))
    assert set(errors) == {"user_id", "name", "password", "memberships", "centre"}
    assert "综合窗口人员须选择所在服务中心" in errors["centre"] and "scjg:boss" in errors["memberships"]
    assert 'id="user_id" name="user_id"' in answer.text and 'value="bad id!"' in answer.text  # kept as typed
    taken = client.post(
        "/admin/people", data={**_person(user_id="scjg1", password_again="other-one"), "csrf_token": token}
    )
    assert taken.status_code == 422 and "已有账号" in taken.text and "两次输入的密码不一致" in taken.text
    assert "scjg9" not in {a.user_id for a in list_accounts(engine.db)}


def test_a_post_without_the_csrf_token_changes_nothing(client, engine):
    _admin(client)
    assert client.post("/admin/people/scjg2/active", data={"active": "0"}).status_code == 403
    assert account_of(engine.db, "scjg2").active


def test_the_admin_moves_a_person_and_the_engine_keeps_the_history(client, engine):
    token = _admin(client)
    page = client.get("/admin/people/scjg1")
    assert page.status_code == 200 and 'value="scjg:handler" checked' in page.text
    answer = client.post(
        "/admin/people/scjg1",
        data={
            "name": "调岗的办理人",
            "memberships": ["gaj:handler", "gaj:duty_b"],
            "roles": ["manager"],
            "csrf_token": token,
        },
        follow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/admin/people/scjg1?done=saved"
    staff = engine.staff("scjg1")
    assert staff.name == "调岗的办理人" and staff.memberships == [("gaj", "duty_b"), ("gaj", "handler")]
    assert staff.changes[-1].actor == "admin" and staff.changes[-1].before == [["scjg", "handler"]]
    assert account_of(engine.db, "scjg1").roles == ["manager"]
    me = client.get("/api/me", headers=bearer(client, "scjg1")).json()
    assert me["departments"] == ["gaj"] and set(me["roles"]) == {"staff", "manager"}
    history = client.get("/admin/people/scjg1").text
    assert "部门角色变更记录" in history and "scjg:handler" in history
    # a supervisor is made by the department's supervisor role
    client.post("/admin/people/scjg2", data={"name": "x", "memberships": ["scjg:scjg_supervisor"], "csrf_token": token})
    assert client.get("/api/me", headers=bearer(client, "scjg2")).json()["supervises"] == ["scjg"]


def test_a_membership_the_department_does_not_have_is_refused_next_to_the_field(client, engine):
    token = _admin(client)
    answer = client.post("/admin/people/scjg1", data={"name": "x", "memberships": ["scjg:duty_a"], "csrf_token": token})
    assert answer.status_code == 422 and 'id="error-memberships"' in answer.text
    assert engine.staff("scjg1").memberships == [("scjg", "handler")]


def test_an_admin_keeps_their_own_admin_role_and_cannot_block_themselves(client, engine):
    token = _admin(client)
    answer = client.post("/admin/people/admin", data={"name": "系统管理员", "roles": [], "csrf_token": token})
    assert answer.status_code == 422 and "不能取消自己的系统管理角色" in answer.text
    answer = client.post("/admin/people/admin/active", data={"active": "0", "csrf_token": token})
    assert answer.status_code == 409
    assert account_of(engine.db, "admin").roles == ["admin"] and account_of(engine.db, "admin").active


def test_a_reset_password_replaces_the_old_one_and_ends_the_sessions(app, client):
    token = _admin(client)
    with TestClient(app) as person:
        log_in_page(person, "scjg1")
        assert person.get("/admin/audit", follow_redirects=False).status_code == 403  # logged in, not admin
        short = client.post("/admin/people/scjg1/password", data={"password": "short", "csrf_token": token})
        assert short.status_code == 422 and 'id="error-password"' in short.text
        answer = client.post(
            "/admin/people/scjg1/password",
            data={"password": "a-new-password", "password_again": "a-new-password", "csrf_token": token},
            follow_redirects=False,
        )
        assert answer.status_code == 303
        assert person.get("/", follow_redirects=False).headers["location"].startswith("/login")
    assert client.post("/api/session", json={"username": "scjg1", "password": PASSWORD}).status_code == 401
    bearer(client, "scjg1", "a-new-password")


def test_a_blocked_person_is_out_at_once_and_back_when_unblocked(app, client):
    token = _admin(client)
    api = bearer(client, "scjg1")
    with TestClient(app) as person:
        log_in_page(person, "scjg1")
        assert person.get("/api/me").status_code == 200
        answer = client.post("/admin/people/scjg1/active", data={"active": "0", "csrf_token": token})
        assert answer.status_code == 200 and "已停用账号" in answer.text
        assert person.get("/", follow_redirects=False).headers["location"].startswith("/login")
        assert person.get("/api/me").status_code == 401
        assert client.get("/api/me", headers=api).status_code == 401
        refused = person.post("/login", data={"username": "scjg1", "password": PASSWORD})
        assert refused.status_code == 401 and "已停用" in refused.text
        assert "已停用" in client.get("/admin").text
        client.post("/admin/people/scjg1/active", data={"active": "1", "csrf_token": token})
        log_in_page(person, "scjg1")
        assert person.get("/api/me").status_code == 200


def test_an_api_token_is_shown_once_works_and_stops_when_revoked(client, engine):
    token = _admin(client)
    answer = client.post(
        "/admin/tokens", data={"user_id": "scjg_boss", "name": "档案系统", "days": "30", "csrf_token": token}
    )
    assert answer.status_code == 201 and answer.headers["cache-control"] == "no-store"
    secret = re.search(r'id="new-token" class="token" readonly value="([^"]+)"', answer.text).group(1)
    headers = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/me", headers=headers).json()["user_id"] == "scjg_boss"
    listed = client.get("/admin/tokens").text
    assert "档案系统" in listed and secret not in listed  # never shown again
    token_id = re.search(r'action="/admin/tokens/(\d+)/revoke"', listed).group(1)
    answer = client.post(f"/admin/tokens/{token_id}/revoke", data={"csrf_token": token}, follow_redirects=False)
    assert answer.status_code == 303
    assert client.get("/api/me", headers=headers).status_code == 401
    assert "已吊销" in client.get("/admin/tokens").text
    again = client.post(f"/admin/tokens/{token_id}/revoke", data={"csrf_token": token})
    assert again.status_code == 404
    assert client.post("/admin/tokens/notanumber/revoke", data={"csrf_token": token}).status_code == 422


def test_a_wrong_token_form_is_refused_next_to_its_fields(client):
    token = _admin(client)
    answer = client.post("/admin/tokens", data={"user_id": "nobody", "name": "", "days": "-3", "csrf_token": token})
    assert answer.status_code == 422
    for field in ("user_id", "name", "days"):
        assert f'id="error-{field}"' in answer.text
    assert 'id="new-token"' not in answer.text


def test_the_admin_lists_and_adds_service_centres(client):
    token = _admin(client)
    page = client.get("/admin/centres")
    assert "市民中心" in page.text and "福田区政务服务中心" in page.text
    answer = client.post(
        "/admin/centres",
        data={
            "code": "lianhua",
            "name": "莲花街道党群服务中心",
            "level": "community",
            "parent": "district",
            "csrf_token": token,
        },
        follow_redirects=False,
    )
    assert answer.status_code == 303
    page = client.get("/admin/centres").text
    assert "莲花街道党群服务中心" in page and "街道/社区" in page
    wrong = client.post(
        "/admin/centres", data={"code": "lianhua", "name": "", "level": "planet", "parent": "mars", "csrf_token": token}
    )
    assert wrong.status_code == 422
    for field in ("code", "name", "level", "parent"):
        assert f'id="error-{field}"' in wrong.text
    assert "添加服务中心" in client.get("/admin/audit").text


def test_the_audit_log_and_a_cases_access_log(client, engine):
    case_id = submit_kaiban(engine)
    with engine.db.connect() as conn:
        number = conn.exec_driver_sql(f"SELECT number FROM cases WHERE id = {case_id}").scalar()
    record_view(engine.db, "scjg1", case_id, "case", "10.0.0.7")
    _admin(client)
    audit = client.get("/admin/audit")
    assert audit.status_code == 200 and "登录" in audit.text and "admin" in audit.text
    rows = client.get("/admin/audit", params={"part": "rows"})
    assert rows.text.lstrip().startswith("<tr>")
    views = client.get("/admin/views", params={"case": number})
    assert views.status_code == 200 and "scjg1" in views.text and "10.0.0.7" in views.text and "办件页" in views.text
    missing = client.get("/admin/views", params={"case": "TB-NOT-THERE"})
    assert missing.status_code == 404 and 'id="error-case"' in missing.text
    assert client.get("/admin/views", params={"case": "9" * 30}).status_code == 422
