"""The create and edit forms: a ``ModelForm`` over the model admin's ``fields``/``exclude``."""

from __future__ import annotations

from collections.abc import Sequence

from django import forms
from django.db.models import Model
from django.forms.models import modelform_factory


def model_form_class(
    model: type[Model],
    *,
    form: type[forms.ModelForm] | None = None,
    fields: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
) -> type[forms.ModelForm]:
    """``form`` (a plain ``ModelForm`` by default) for ``model``, limited to the given fields.

    ``fields`` and ``exclude`` as a model admin declares them: ``None`` for all fields; a field
    both listed and excluded is left out.
    """
    base = form or forms.ModelForm
    if fields is not None and exclude:
        fields = [name for name in fields if name not in exclude]
    return modelform_factory(
        model,
        form=base,
        fields=fields if fields is not None else (None if exclude else "__all__"),
        exclude=exclude,
    )
