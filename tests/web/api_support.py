"""Helpers of the API tests: a kaiban-mini application, and walking a case through the API."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from web.accounts import create_api_token

APPLICANT = {"id": "110101199003071234", "name": "张三", "phone": "13812345678"}


def application(**changes: Any) -> dict[str, Any]:
    body = {
        "definition": "kaiban-mini",
        "applicant": dict(APPLICANT),
        "form": {"company_name": "深圳市通办科技有限公司", "needs_seal": True, "employees": 3},
        "materials": ["id_card", "lease"],
    }
    body.update(changes)
    return body


class Api:
    """A TestClient with one bearer token per person, logged in on first use."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.tokens: dict[str, dict[str, str]] = {}

    def headers(self, user: str) -> dict[str, str]:
        """An API token (as an admin makes them for clients): no password hashing in every test."""
        if user not in self.tokens:
            db = self.client.app.state.services.engine.db
            self.tokens[user] = {"Authorization": f"Bearer {create_api_token(db, user, 'tests', 'test')}"}
        return self.tokens[user]

    def get(self, user: str | None, url: str, **kwargs: Any) -> Any:
        return self.client.get(url, headers=self.headers(user) if user else {}, **kwargs)

    def post(self, user: str, url: str, json: Any = None, **kwargs: Any) -> Any:
        headers = {**self.headers(user), **kwargs.pop("headers", {})}
        return self.client.post(url, json=json, headers=headers, **kwargs)

    def ok(self, answer: Any, status: int = 200) -> Any:
        assert answer.status_code == status, f"{answer.status_code}: {answer.text}"
        return answer.json()

    def submit(self, user: str = "zwfw1", **changes: Any) -> str:
        return self.ok(self.post(user, "/api/cases", application(**changes)), 201)["number"]

    def accepted(self, user: str = "zwfw1", **changes: Any) -> str:
        number = self.submit(user, **changes)
        self.ok(self.post("zwfw1", f"/api/cases/{number}/accept", {"opinion": "材料齐全"}))
        return number

    def open_task(self, number: str, step: str, user: str = "manager") -> int:
        case = self.ok(self.get(user, f"/api/cases/{number}"))
        found = [t for t in case["tasks"] if t["step_id"] == step and t["state"] in ("ready", "claimed")]
        assert found, f"no open {step} task in {[(t['step_id'], t['state']) for t in case['tasks']]}"
        return found[-1]["id"]

    def work(self, number: str, step: str, user: str, outcome: str = "approve", opinion: str = "同意") -> int:
        task = self.open_task(number, step)
        self.ok(self.post(user, f"/api/tasks/{task}/claim"))
        self.ok(self.post(user, f"/api/tasks/{task}/complete", {"outcome": outcome, "opinion": opinion}))
        return task
