"""Values from outside that the database or the JSON encoder would refuse with a raw error, or keep
wrongly, are refused with InvalidData before anything is written, on SQLite and PostgreSQL.

NaN and infinity used to pass `required`, `min` and `max`, were stored as JSON null (a required
value lost) and stayed NaN in the engine's kept copy, so the next process routed differently; an
integer beyond 64 bits was a raw TypeError from the JSON encoder; a NUL character or a lone surrogate
a PostgreSQL DataError (or, on SQLite, text that cannot be read back as UTF-8); an idempotency key
longer than its column a DataError on PostgreSQL and silently kept on SQLite; and text had no size limit.
"""

from __future__ import annotations

import math

import pytest

from orchestrator.definition.model import TEXT_LIMIT
from orchestrator.engine import InvalidData
from orchestrator.engine.forms import FORM_LIMIT, IDEMPOTENCY_KEY_LIMIT, OPINION_LIMIT

from .helpers import (
    KAIBAN_APPLICANT,
    KAIBAN_FORM,
    accepted_kaiban,
    case_row,
    open_tasks,
    refused,
    step_states,
    submit_kaiban,
    surveyed,
)

NOT_FINITE = [math.nan, math.inf, -math.inf]
NOT_STORABLE_TEXT = {
    "NUL": ("甲公司\x00", "NUL character"),
    "lone surrogate": ("甲公司\ud800", "lone surrogate"),
}


@pytest.mark.parametrize("value", NOT_FINITE, ids=["nan", "inf", "-inf"])
def test_a_number_field_refuses_nan_and_infinity(engine, value):
    """survey-mini's floor_area is a required number with min 0: NaN passed both and became null."""
    with refused(engine, InvalidData, "floor_area", "is not a finite number"):
        engine.submit_case(
            "survey-mini", {"id": "A", "name": "乙"}, {"project_name": "厂房", "floor_area": value}, ["site_plan"]
        )


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 10**30, 1e300])
def test_whole_numbers_beyond_64_bits_are_refused(engine, value):
    with refused(engine, InvalidData, "employees", "beyond 64 bits"):
        submit_kaiban(engine, form={"employees": value})


@pytest.mark.parametrize("kind", NOT_STORABLE_TEXT)
def test_text_the_database_cannot_keep_is_refused_in_the_form(engine, kind):
    value, words = NOT_STORABLE_TEXT[kind]
    with refused(engine, InvalidData, "company_name", words):
        submit_kaiban(engine, form={"company_name": value})


@pytest.mark.parametrize("kind", NOT_STORABLE_TEXT)
def test_the_applicant_and_material_keys_are_checked_too(engine, kind):
    value, words = NOT_STORABLE_TEXT[kind]
    with refused(engine, InvalidData, "applicant.name", words):
        engine.submit_case("kaiban-mini", {"id": "A1", "name": value}, KAIBAN_FORM, ["id_card"])
    with refused(engine, InvalidData, "applicant.address", "not a finite number"):
        engine.submit_case("kaiban-mini", {"id": "A1", "name": "张三", "address": math.nan}, KAIBAN_FORM)
    with refused(engine, InvalidData, "applicant.code", "beyond 64 bits"):
        engine.submit_case("kaiban-mini", {"id": "A1", "name": "张三", "code": 2**70}, KAIBAN_FORM)
    with refused(engine, InvalidData, "materials", words):
        engine.submit_case("kaiban-mini", KAIBAN_APPLICANT, KAIBAN_FORM, ["id_card", "lease" + value[-1]])


@pytest.mark.parametrize("kind", NOT_STORABLE_TEXT)
def test_opinions_reasons_and_notices_are_checked(engine, kind):
    value, words = NOT_STORABLE_TEXT[kind]
    case_id = submit_kaiban(engine, materials=["id_card"])
    with refused(engine, InvalidData, "reason", words):
        engine.refuse_case(case_id, "zwfw1", value, "可申请行政复议")
    with refused(engine, InvalidData, "notice", words):
        engine.request_supplement(case_id, "zwfw1", ["lease"], value)
    accepted = accepted_kaiban(engine)
    licence = open_tasks(engine, accepted)["licence"]
    with refused(engine, InvalidData, "opinion", words):
        engine.complete_task(licence, "scjg1", "reject", value)
    with refused(engine, InvalidData, "actor", words):
        engine.claim_task(licence, "scjg1" + value[-1])


def test_an_idempotency_key_longer_than_its_column_is_refused(engine):
    with refused(engine, InvalidData, "idempotency_key", f"more than the {IDEMPOTENCY_KEY_LIMIT} allowed"):
        submit_kaiban(engine, idempotency_key="k" * (IDEMPOTENCY_KEY_LIMIT + 1))
    assert submit_kaiban(engine, idempotency_key="k" * IDEMPOTENCY_KEY_LIMIT) > 0


def test_ids_beyond_64_bits_are_invalid_data_not_a_driver_error(engine):
    with refused(engine, InvalidData, "task_id", "is no id"):
        engine.claim_task(2**64, "scjg1")
    with refused(engine, InvalidData, "case_id", "expected a whole number"):
        engine.accept_case(True, "zwfw1")


def test_text_has_default_limits(engine):
    with refused(engine, InvalidData, "company_name", f"more than the {TEXT_LIMIT:,} allowed"):
        submit_kaiban(engine, form={"company_name": "甲" * (TEXT_LIMIT + 1)})
    case_id = accepted_kaiban(engine)
    licence = open_tasks(engine, case_id)["licence"]
    with refused(engine, InvalidData, "opinion", f"more than the {OPINION_LIMIT:,} allowed"):
        engine.complete_task(licence, "scjg1", "reject", "不" * (OPINION_LIMIT + 1))
    many_fields = {f"extra_{n}": "x" * TEXT_LIMIT for n in range(FORM_LIMIT // TEXT_LIMIT + 1)}
    with refused(engine, InvalidData, "form is", f"more than the {FORM_LIMIT:,} allowed"):
        submit_kaiban(engine, form=many_fields)
    engine.complete_task(licence, "scjg1", "approve", "同" * OPINION_LIMIT)  # the limit itself is fine


def test_a_nan_edit_is_refused_and_the_kept_copy_keeps_the_value(engine):
    """floor_area edited to NaN at the review: `floor_area <= 1000` was then false here (NaN) and an
    error elsewhere (null read back), so the 秒批 rule decided differently by process."""
    case_id = surveyed(engine)
    chain = open_tasks(engine, case_id)["chain"]
    engine.claim_task(chain, "zjj1")
    with refused(engine, InvalidData, "floor_area", "is not a finite number"):
        engine.complete_task(chain, "zjj1", "approve", "承办", form_updates={"floor_area": math.nan})
    for user in ("zjj1", "zjj2", "zjj3"):  # the chain's three levels, on the form as it was
        engine.complete_task(chain, user, "approve", "同意")
    assert case_row(engine, case_id)["form"]["floor_area"] == 800
    states = step_states(engine, case_id)
    assert states["instant"] == "completed" and states["manual"] == "skipped"  # 800 <= 1000: 秒批 passed
