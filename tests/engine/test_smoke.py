from sqlalchemy import text


def test_mini_case_runs_to_completion(engine, clock):
    case = engine.submit_case("kaiban-mini", {"id": "A1", "name": "张三"},
                              {"company_name": "甲公司", "needs_seal": True, "employees": 2},
                              ["id_card", "lease"])  # fmt: skip
    engine.accept_case(case, "zwfw1")
    with engine.db.connect() as c:
        tasks = dict(c.execute(text("select step_id, id from tasks where state='ready'")).all())
    engine.complete_task(tasks["licence"], "scjg1")
    with engine.db.connect() as c:
        ready = dict(c.execute(text("select step_id, id from tasks where state='ready'")).all())
    assert set(ready) == {"seal", "invoice", "social"}
