"""Value checks with the shapes the published contract accepts (ids and codes), so that nothing a service
stores can fail to publish. Pure: domain modules use them."""

from __future__ import annotations

import re

from sandan_eventbus.errors import InvalidArgument

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
_CODE = re.compile(r"[a-z][a-z0-9_]{0,39}")


def check_id(field: str, value: str | None) -> str:
    if not value or not _ID.fullmatch(value):
        raise InvalidArgument(field, "must be an id: 1-64 letters, digits, '_', '.', ':' or '-'")
    return value


def check_code(field: str, value: str | None) -> str:
    if not value or not _CODE.fullmatch(value):
        raise InvalidArgument(field, "must be a lowercase code: a-z, 0-9 and '_', starting with a letter")
    return value
