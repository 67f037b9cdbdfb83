"""Masking of personal data for every view, log and table."""
from __future__ import annotations


def mask_id(number: str) -> str:
    """Keep the region prefix and the last four characters: 370405********1234."""
    if len(number) <= 8:
        return "*" * len(number)
    return number[:6] + "*" * (len(number) - 10) + number[-4:]


def mask_name(name: str) -> str:
    """Keep the first character of a person's name: 张**."""
    return name[:1] + "*" * (len(name) - 1) if name else name
