"""``?q=`` search over a model admin's ``search_fields``, the way Django's admin reads them."""

from __future__ import annotations

from django.contrib.admin.utils import get_fields_from_path
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db.models import Q, QuerySet
from django.utils.text import smart_split, unescape_string_literal

MAX_QUERY_LENGTH = 200

#: Prefix in ``search_fields`` → lookup (no prefix: ``icontains``). "@" (full-text) needs
#: PostgreSQL; elsewhere it falls back to ``icontains``.
PREFIXES = {"^": "istartswith", "=": "iexact", "@": "icontains"}


class InvalidSearch(ValueError):
    """The search text cannot be used."""


def _lookup(search_field: str) -> tuple[str, str]:
    """``"^name"`` → ``("name", "istartswith")``."""
    lookup = PREFIXES.get(search_field[:1])
    if lookup is not None:
        return search_field[1:], lookup
    return search_field, "icontains"


def search_path(search_field: str) -> str:
    """The ORM path a ``search_fields`` entry searches: ``"^user__email"`` → ``"user__email"``."""
    return _lookup(search_field)[0]


def _accepts(queryset: QuerySet, path: str, lookup: str, term: str) -> bool:
    """Whether ``term`` is a valid value for an exact match on the field at ``path``."""
    if lookup != "iexact":
        return True
    try:
        field = get_fields_from_path(queryset.model, path)[-1]
    except (FieldDoesNotExist, IndexError):
        return True  # an annotation or a lookup Django resolves itself
    try:
        field.to_python(term)
    except (ValidationError, TypeError, ValueError):
        return False
    return True


def search_queryset(queryset: QuerySet, search_fields: list[str], query: str) -> QuerySet:
    """Rows where every word (or "quoted phrase") of ``query`` matches some search field."""
    if len(query) > MAX_QUERY_LENGTH:
        raise InvalidSearch(f"The search text is longer than {MAX_QUERY_LENGTH} characters.")
    try:
        terms = [
            unescape_string_literal(bit) if bit[:1] in {'"', "'"} and bit[-1:] == bit[:1] else bit
            for bit in smart_split(query)
        ]
    except ValueError as exc:
        raise InvalidSearch(f"The search text cannot be read: {exc}") from None
    lookups = [_lookup(name) for name in search_fields]
    spans_relations = any("__" in path for path, _ in lookups)
    for term in terms:
        if not term:
            continue
        matches = Q(pk__in=[])
        for path, lookup in lookups:
            if _accepts(queryset, path, lookup, term):
                matches |= Q(**{f"{path}__{lookup}": term})
        queryset = queryset.filter(matches)
    return queryset.distinct() if spans_relations else queryset
