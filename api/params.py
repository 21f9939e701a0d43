"""Parameter reading for commands: names are case-insensitive, every bad value is a 431 that
names the parameter, with CloudStack's own texts where it has one.

Integers are ASCII digits within Java's int range unless a command asks for other bounds (an
absurd number never reaches a query); ``page`` stops at ``MAX_PAGE`` so that an offset always fits
the database; map indexes have at most nine digits. Sizes and characters of every value are
checked before any command runs (``api.limits``).
"""
from __future__ import annotations

import re

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from orchestrator.errors import InvalidParameter, MalformedParameter

UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
MAP_RE = re.compile(r"^([^\[\]]+)\[([0-9]{1,9})\]\.([^\[\].]+)$")
INTEGER_RE = re.compile(r"^[+-]?[0-9]{1,19}$")
INT_MIN, INT_MAX = -2 ** 31, 2 ** 31 - 1  # Java's int, CloudStack's INTEGER
MAX_PAGE_SIZE = 500
MAX_PAGE = 1_000_000


_BY_UUID: dict = {}


def _by_uuid(model, options: tuple, several: bool):
    """``select(model).where(uuid = :uuid)`` (``IN`` when ``several``), built once per shape."""
    key = (model, options, several)
    statement = _BY_UUID.get(key)
    if statement is None:
        column = model.uuid
        where = column.in_(bindparam("uuid", expanding=True)) if several else column == bindparam("uuid")
        statement = _BY_UUID[key] = select(model).options(*options).where(where)
    return statement


class Params:
    """The request's parameters, keyed by lower-cased name, for command ``command``."""

    def __init__(self, command: str, values: dict[str, str]):
        self.command = command
        self.values = values

    @property
    def api_name(self) -> str:
        return self.command.lower()

    def get(self, name: str) -> str | None:
        value = self.values.get(name.lower())
        return value if value is None else value.strip()

    def required(self, name: str) -> str:
        value = self.get(name)
        if not value:
            raise InvalidParameter(f"Unable to execute API command {self.api_name} due to missing "
                                   f"parameter {name}")
        return value

    def invalid(self, name: str, value: str) -> InvalidParameter:
        return InvalidParameter(
            f"Unable to execute API command {self.api_name} due to invalid value. Invalid parameter "
            f"{name} value={value} due to incorrect long value format, or entity does not exist or "
            f"due to incorrect parameter annotation for the field in api cmd class.")

    def entity(self, session: Session, model, name: str, required: bool = False, options=()):
        """The object whose UUID is parameter ``name`` (None when optional and absent); ``options``:
        loader options (``joinedload``...) for what the caller will read of it."""
        value = self.required(name) if required else self.get(name)
        if not value:
            return None
        if not UUID_RE.match(value):
            raise self.invalid(name, value)
        # UUIDs are stored lower-cased; an exact match of a mixed-case one is accepted too.
        if value == value.lower():
            obj = session.scalar(_by_uuid(model, tuple(options), False), {"uuid": value})
        else:
            found = session.scalars(_by_uuid(model, tuple(options), True), {"uuid": [value.lower(), value]}).all()
            obj = min(found, key=lambda o: o.uuid != value.lower()) if found else None
        if obj is None:
            raise self.invalid(name, value)
        return obj

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self.get(name)
        return default if value is None or value == "" else value.lower() == "true"

    def integer(self, name: str, minimum: int | None = None, maximum: int | None = None) -> int | None:
        value = self.get(name)
        if value is None or value == "":
            return None
        if not INTEGER_RE.match(value):
            raise InvalidParameter(f"Unable to execute API command {self.api_name} due to invalid value "
                                   f"{value[:64]!r} for parameter {name}: an integer is expected")
        number = int(value)
        low = INT_MIN if minimum is None else minimum
        high = INT_MAX if maximum is None else maximum
        if not low <= number <= high:
            raise InvalidParameter(f"Invalid value {number} for parameter {name}: it must be "
                                   f"between {low} and {high}")
        return number

    def paging(self) -> tuple[int, int] | None:
        """(offset, limit) from ``page``/``pagesize``; None when not paged. Both or neither."""
        page = self.integer("page", minimum=1, maximum=MAX_PAGE)
        size = self.integer("pagesize", minimum=1, maximum=MAX_PAGE_SIZE)
        if page is None and size is None:
            return None
        if size is None:
            raise InvalidParameter('"pagesize" parameter is required when "page" is specified')
        if page is None:
            raise InvalidParameter('"page" parameter is required when "pagesize" is specified')
        return (page - 1) * size, size

    def map(self, name: str) -> dict[int, dict[str, str]]:
        """A CloudStack map parameter: ``name[0].field=value`` -> {0: {"field": value}}."""
        out: dict[int, dict[str, str]] = {}
        prefix = name.lower() + "["
        for key, value in self.values.items():
            if not key.startswith(prefix):
                continue
            match = MAP_RE.match(key)
            if not match:
                raise MalformedParameter(
                    f"Unable to decode parameter {key}; if specifying an object array, please use "
                    f"parameter[index].field=XXX, e.g. {name}[0].field=value")
            out.setdefault(int(match.group(2)), {})[match.group(3)] = value
        return out
