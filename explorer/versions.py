"""Row versions: how the Explorer notices that a row changed while someone was looking at it.

A form page takes a :func:`snapshot` of the row's values for the form's fields and embeds
:meth:`Snapshot.token` in the page. The POST hands the token back; :func:`read_token` turns it into
the snapshot the user saw, and the view compares its :attr:`Snapshot.version` (a hash of the
stored values) with a snapshot of the row re-read inside the write transaction. When they differ,
:func:`changes` says which fields changed, from what the user saw to what is stored now.

The token is signed (Django's ``signing.Signer``, salted with the row's model and primary key,
without a timestamp: equal values give equal tokens), so a garbled, forged or other row's token
is rejected as :class:`InvalidVersion` rather than trusted.
Works for any model; nothing is stored in the database.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from django.contrib.admin.utils import display_for_field
from django.core import signing
from django.core.exceptions import FieldDoesNotExist, ObjectDoesNotExist
from django.db.models import Field, FileField, Model
from django.utils.text import capfirst

__all__ = [
    "VERSION_FIELD",
    "Change",
    "InvalidVersion",
    "Snapshot",
    "changes",
    "read_token",
    "snapshot",
]

#: The name of the hidden input carrying :meth:`Snapshot.token`.
VERSION_FIELD = "explorer_version"

EMPTY = "—"


class InvalidVersion(ValueError):
    """A POST whose version token is missing or not one the Explorer issued for this row."""


@dataclass(frozen=True)
class Value:
    """One field of a row: its stored value as a stable string, and as a person reads it."""

    stored: str
    shown: str


@dataclass(frozen=True)
class Snapshot:
    """The values of some of one row's fields at one moment."""

    #: ``app_label.model:pk``, the row the snapshot belongs to.
    row: str
    values: Mapping[str, Value]
    #: Field labels by name (only for display; not part of the token).
    labels: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def version(self) -> str:
        """A SHA-256 hash of the stored values: equal versions mean equal fields."""
        stored = sorted((name, value.stored) for name, value in self.values.items())
        return hashlib.sha256(json.dumps(stored).encode()).hexdigest()

    def token(self) -> str:
        """The snapshot, signed for this row, to carry in a form (see :func:`read_token`)."""
        payload = {name: [value.stored, value.shown] for name, value in self.values.items()}
        # No timestamp (unlike signing.dumps): the same row values give the same token.
        return signing.Signer(salt=_salt(self.row)).sign_object(payload, compress=True)


@dataclass(frozen=True)
class Change:
    """A field that differs between what the user saw and what is stored now."""

    name: str
    label: str
    seen: str
    now: str


def _row(instance: Model) -> str:
    return f"{instance._meta.label_lower}:{instance.pk}"


def _salt(row: str) -> str:
    return f"explorer.version:{row}"


def _model_fields(instance: Model, names: Iterable[str]) -> list[Field]:
    """The model fields among ``names`` (form-only fields have no stored value to compare)."""
    fields = []
    for name in names:
        try:
            model_field = instance._meta.get_field(name)
        except FieldDoesNotExist:
            continue
        if isinstance(model_field, Field):
            fields.append(model_field)
    return fields


def _value(instance: Model, model_field: Field) -> Value:
    """A field's value: the database's view (primary keys for relations) and a display string."""
    if model_field.many_to_many:
        related = list(getattr(instance, model_field.name).all()) if instance.pk else []
        stored = json.dumps(sorted(str(obj.pk) for obj in related))
        return Value(stored, ", ".join(sorted(str(obj) for obj in related)) or EMPTY)
    stored = model_field.value_to_string(instance)
    try:
        value = getattr(instance, model_field.name)
    except ObjectDoesNotExist:  # a relation to a row that is gone
        value = None
    if value is None or value == "":
        shown = EMPTY
    elif isinstance(value, bool):
        shown = "Yes" if value else "No"
    elif isinstance(model_field, FileField):
        shown = value.name or EMPTY
    else:
        shown = str(display_for_field(value, model_field, EMPTY))
    return Value(stored, shown)


def snapshot(instance: Model, field_names: Iterable[str]) -> Snapshot:
    """The values of ``instance`` for the model fields among ``field_names`` (a form's fields).

    Sync only: relations and many-to-many fields may query the database.
    """
    fields = _model_fields(instance, field_names)
    return Snapshot(
        row=_row(instance),
        values={f.name: _value(instance, f) for f in fields},
        labels={f.name: capfirst(str(f.verbose_name)) for f in fields},
    )


def read_token(token: str | None, instance: Model) -> Snapshot:
    """The snapshot a form carried for ``instance``; :class:`InvalidVersion` if it has none."""
    if not token:
        raise InvalidVersion("is missing")
    row = _row(instance)
    try:
        payload = signing.Signer(salt=_salt(row)).unsign_object(token)
    except signing.BadSignature:
        raise InvalidVersion("is malformed") from None
    if not isinstance(payload, dict):
        raise InvalidVersion("is malformed")
    values = {}
    for name, pair in payload.items():
        strings = isinstance(pair, list) and all(isinstance(value, str) for value in pair)
        if not (strings and len(pair) == 2):
            raise InvalidVersion("is malformed")
        values[name] = Value(*pair)
    return Snapshot(row=row, values=values)


def changes(seen: Snapshot, now: Snapshot) -> list[Change]:
    """The fields whose stored value differs between ``seen`` and ``now``, in ``now``'s order.

    Values are as displayed, or as stored where the display of both is the same.
    """
    names = [*now.values, *(name for name in seen.values if name not in now.values)]
    found = []
    for name in names:
        before, after = seen.values.get(name), now.values.get(name)
        if before is not None and after is not None and before.stored == after.stored:
            continue
        label = now.labels.get(name) or seen.labels.get(name) or name
        was, is_now = before.shown if before else EMPTY, after.shown if after else EMPTY
        if before and after and was == is_now:  # e.g. seconds a date display leaves out
            was, is_now = before.stored, after.stored
        found.append(Change(name, label, was, is_now))
    return found
