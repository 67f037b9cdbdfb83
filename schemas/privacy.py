"""Masking of personal data for every view, log and table."""
from __future__ import annotations

import re
from typing import Any


def mask_id(number: str) -> str:
    """Keep the region prefix and the last four characters: 370405********1234."""
    if len(number) <= 8:
        return "*" * len(number)
    return number[:6] + "*" * (len(number) - 10) + number[-4:]


def mask_name(name: str) -> str:
    """Keep the first character of a person's name: 张**."""
    return name[:1] + "*" * (len(name) - 1) if name else name


#: Anything shaped like a 居民身份证号 (18, or the old 15, characters) or a 统一社会信用代码.
_ID_LIKE = re.compile(r"(?<![0-9A-Za-z])(?:\d{17}[\dXx]|\d{15}|[0-9A-Z]{18})(?![0-9A-Za-z])")
#: The envelope's own fields, also in a body that no longer parses (cut short, altered).
_ID_FIELD = re.compile(r'("id_number"\s*:\s*")([^"]*)(")?')
_NAME_FIELD = re.compile(r'("applicant"\s*:\s*\{[^}]*?"name"\s*:\s*")([^"]*)')


def _masked_id_like(m: re.Match[str]) -> str:
    # Only what has a digit: an upper-case word of 18 letters is no number.
    return mask_id(m.group(0)) if any(c.isdigit() for c in m.group(0)) else m.group(0)


def mask_text(text: str) -> str:
    """``text`` with every ID number and applicant name masked, even in a broken envelope."""
    # A number the body's end cuts short is masked whole: its last four are not the number's.
    text = _ID_FIELD.sub(lambda m: m.group(1) + (mask_id(m.group(2)) + m.group(3) if m.group(3)
                                                 else "*" * len(m.group(2))), text)
    text = _NAME_FIELD.sub(lambda m: m.group(1) + mask_name(m.group(2)), text)
    return _ID_LIKE.sub(_masked_id_like, text)


def mask_json(value: Any, key: str = "") -> Any:
    """A decoded JSON value with applicants' names and every ID number masked."""
    if isinstance(value, dict):
        masked = {k: mask_json(v, k) for k, v in value.items()}
        if key == "applicant" and isinstance(masked.get("name"), str):
            masked["name"] = mask_name(masked["name"])
        return masked
    if isinstance(value, list):
        return [mask_json(v) for v in value]
    if isinstance(value, str):
        return mask_id(value) if key == "id_number" else mask_text(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**14:
        return mask_id(str(value))  # a number written without quotes is still a number
    return value
