"""The create and edit forms: a ``ModelForm`` over the model admin's ``fields``/``exclude``."""

from __future__ import annotations

from django import forms
from django.forms.models import modelform_factory

from explorer.registry import ModelInfo


def model_form_class(info: ModelInfo) -> type[forms.ModelForm]:
    """The admin's ``form`` (a plain ``ModelForm`` by default) limited to its fields."""
    base = info.option("form") or forms.ModelForm
    fields, exclude = info.form_fields, info.form_exclude
    if fields is not None and exclude:
        fields = [name for name in fields if name not in exclude]
    return modelform_factory(
        info.model,
        form=base,
        fields=fields if fields is not None else (None if exclude else "__all__"),
        exclude=exclude,
    )
