"""身份证号 and phone numbers masked for the people who do not need them (lists, logs, managers)."""

from __future__ import annotations

import re
from typing import Any

_PHONE = re.compile(r"(?<!\d)(1\d{2})\d{4}(\d{4})(?!\d)")


def mask_id(value: Any) -> str:
    """110101199003071234 → 110101********1234; a 统一社会信用代码 (a company) is public and stays."""
    text = str(value or "")
    if len(text) == 18 and text[:17].isdigit():
        return text[:6] + "*" * 8 + text[-4:]
    if len(text) == 15 and text.isdigit():
        return text[:6] + "*" * 6 + text[-3:]
    return text


def mask_phone(value: Any) -> str:
    return _PHONE.sub(r"\1****\2", str(value or ""))


def masked_applicant(applicant: dict[str, Any], unmasked: bool) -> dict[str, Any]:
    if unmasked:
        return dict(applicant)
    shown = dict(applicant)
    if "id" in shown:
        shown["id"] = mask_id(shown["id"])
    for key in ("phone", "mobile", "contact_phone"):
        if key in shown:
            shown[key] = mask_phone(shown[key])
    return shown
