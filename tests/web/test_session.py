"""Log-in, sessions, tokens, CSRF and the error shape, over HTTP."""

from __future__ import annotations

from .conftest import PASSWORD, bearer, csrf_of, log_in_page


def test_a_page_without_a_session_goes_to_the_log_in_page_and_back(client):
    answer = client.get("/?x=1", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/login?next=/%3Fx%3D1"
    answer = client.post(
        "/login", data={"username": "scjg1", "password": PASSWORD, "next": "/?x=1"}, follow_redirects=False
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/?x=1"
    assert "tongban_session" in answer.cookies


def test_a_wrong_password_is_refused_with_one_message_for_name_and_password(client):
    wrong = client.post("/login", data={"username": "scjg1", "password": "nope-nope"})
    unknown = client.post("/login", data={"username": "nobody", "password": "nope-nope"})
    assert wrong.status_code == unknown.status_code == 401
    assert "用户名或密码错误" in wrong.text and "用户名或密码错误" in unknown.text


def test_log_in_attempts_are_rate_limited_per_user_name(client):
    for _ in range(5):
        assert client.post("/api/session", json={"username": "scjg2", "password": "wrong-wrong"}).status_code == 401
    answer = client.post("/api/session", json={"username": "scjg2", "password": PASSWORD})
    assert answer.status_code == 429 and int(answer.headers["Retry-After"]) > 0
    assert answer.json()["error"] == "too_many_attempts"
    assert client.post("/api/session", json={"username": "scjg1", "password": PASSWORD}).status_code == 201


def test_the_open_redirect_is_closed(client):
    answer = client.post(
        "/login", data={"username": "scjg1", "password": PASSWORD, "next": "//evil.example/x"}, follow_redirects=False
    )
    assert answer.headers["location"] == "/"


def test_a_form_post_without_the_csrf_token_is_refused_and_with_it_goes_through(client):
    log_in_page(client, "scjg1")
    assert client.post("/logout", follow_redirects=False).status_code == 403
    page = client.get("/login")  # any page carries the token of the session
    answer = client.post("/logout", data={"csrf_token": csrf_of(page.text)}, follow_redirects=False)
    assert answer.status_code == 303
    assert client.get("/", follow_redirects=False).headers["location"].startswith("/login")  # the session ended


def test_api_tokens_identify_the_person_and_a_bad_one_is_401_json(client):
    headers = bearer(client, "scjg_boss")
    me = client.get("/api/me", headers=headers).json()
    assert me["user_id"] == "scjg_boss" and "supervisor" in me["roles"] and me["supervises"] == ["scjg"]
    answer = client.get("/api/me", headers={"Authorization": "Bearer forged"})
    assert answer.status_code == 401 and answer.json()["error"] == "unauthenticated"
    assert client.delete("/api/session", headers=headers).status_code == 204
    assert client.get("/api/me", headers=headers).status_code == 401


def test_a_window_account_has_its_centre_and_a_manager_reads_everything(client):
    assert client.get("/api/me", headers=bearer(client, "zwfw1")).json()["centre"] == "city"
    manager = client.get("/api/me", headers=bearer(client, "manager")).json()
    assert manager["roles"] == ["manager"] and manager["departments"] == []


def test_bad_json_is_a_422_with_the_field_and_an_oversized_body_a_413(client, web_settings):
    answer = client.post("/api/session", json={"username": 3})
    assert answer.status_code == 422 and answer.json()["error"] == "invalid_data"
    assert any(d["field"] == "password" for d in answer.json()["details"])
    big = client.post(
        "/api/session", content=b"x" * (web_settings.max_body_bytes + 1), headers={"content-type": "application/json"}
    )
    assert big.status_code == 413 and big.json()["error"] == "too_large"
