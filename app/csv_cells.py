"""CSV cells that are safe to open in a spreadsheet: shared by the API exports and the
arena's vote exports."""

from __future__ import annotations

import json

# A spreadsheet runs a cell that starts with one of these as a formula (OWASP: CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """A value as one CSV cell: None empty, dicts and lists as JSON, and text that a spreadsheet
    would run as a formula behind an apostrophe (prompts are user data)."""
    if value is None:
        return ""
    if isinstance(value, dict | list):
        value = json.dumps(value, sort_keys=True)
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value
