"""The Explorer's pages: async, staff-only views over the registered models.

Reads use Django's async ORM; form validation and saving (sync by nature: unique checks, related
choices) run through ``sync_to_async``. Bad query parameters are answered 400, unknown models,
objects and pages 404, writes to a read-only registration 403, each with a message; the read
pages (index, list, detail) answer GET and HEAD only (405). An edit or delete of a row that
changed since its page was shown is refused with 409 (``explorer.versions``). Fields the
registration hides (``explorer_hidden_fields``) appear on no page and in no form or version.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from functools import wraps
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib import messages
from django.contrib.admin.utils import (
    display_for_field,
    display_for_value,
    label_for_field,
    lookup_field,
)
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db import connections, router, transaction
from django.db.models import Model, ProtectedError, QuerySet, RestrictedError
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.text import capfirst
from django.views.decorators.http import require_http_methods, require_safe

from explorer.registry import ModelInfo, explorer
from explorer.search import InvalidSearch, search_queryset
from explorer.versions import (
    VERSION_FIELD,
    Change,
    InvalidVersion,
    Snapshot,
    changes,
    read_token,
    snapshot,
)
from smallstack import dashboard
from smallstack.access import staff_required

EMPTY = "—"


class ExplorerError(Exception):
    """A request the Explorer answers with an error page (status and message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


TITLES = {400: "Bad request", 403: "Forbidden", 404: "Not found", 409: "Conflict"}


def _error_page(request: HttpRequest, error: ExplorerError, info: ModelInfo | None) -> HttpResponse:
    context = {
        "title": TITLES.get(error.status, "Error"),
        "message": error.message,
        "status": error.status,
        "info": info,
    }
    return TemplateResponse(request, "explorer/error.html", context, status=error.status)


def explorer_view(view):
    """Staff only; an :class:`ExplorerError` raised by the view becomes its error page."""

    @wraps(view)
    async def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return await view(request, *args, **kwargs)
        except ExplorerError as error:
            app_label, model_name = kwargs.get("app_label"), kwargs.get("model_name")
            info = explorer.lookup(app_label, model_name) if app_label and model_name else None
            return _error_page(request, error, info)

    return staff_required(wrapper)


# -- helpers --------------------------------------------------------------------------------


def _model_info(app_label: str, model_name: str) -> ModelInfo:
    info = explorer.lookup(app_label, model_name)
    if info is None:
        raise ExplorerError(
            404, f"No model {app_label}.{model_name} is registered with the Explorer."
        )
    return info


def _writable(info: ModelInfo) -> ModelInfo:
    if info.readonly:
        raise ExplorerError(
            403, f"{capfirst(info.verbose_name_plural)} are read-only in the Explorer."
        )
    return info


async def _get_object(info: ModelInfo, pk: str) -> Model:
    try:
        return await info.model._default_manager.aget(pk=pk)
    except (ObjectDoesNotExist, ValueError, TypeError, ValidationError):
        raise ExplorerError(
            404, f"No {info.verbose_name} with primary key {pk!r} exists."
        ) from None


def _query_string(request: HttpRequest, **changes: Any) -> str:
    """The current query string with ``changes`` applied (None or "" drops a parameter)."""
    query = request.GET.copy()
    for name, value in changes.items():
        if value in (None, ""):
            query.pop(name, None)
        else:
            query[name] = str(value)
    encoded = query.urlencode()
    return f"?{encoded}" if encoded else "?"


def _urls(info: ModelInfo, obj: Model | None = None) -> dict[str, str]:
    kwargs = info.url_kwargs
    urls = {"list": reverse("explorer:list", kwargs=kwargs)}
    if not info.readonly:
        urls["add"] = reverse("explorer:add", kwargs=kwargs)
    if obj is not None:
        kwargs = {**kwargs, "pk": obj.pk}
        urls["detail"] = reverse("explorer:detail", kwargs=kwargs)
        if not info.readonly:
            urls["edit"] = reverse("explorer:edit", kwargs=kwargs)
            urls["delete"] = reverse("explorer:delete", kwargs=kwargs)
    return urls


def _cell(info: ModelInfo, name: str, obj: Model) -> Any:
    """One list cell as the admin would show it (escaped by the template unless marked safe)."""
    try:
        field, _attr, value = lookup_field(name, obj, info.model_admin)
    except ObjectDoesNotExist:
        return EMPTY
    if field is not None and getattr(field, "concrete", False):
        return display_for_field(value, field, EMPTY)
    return display_for_value(value, EMPTY, boolean=getattr(_attr, "boolean", False))


def _column_label(info: ModelInfo, name: str) -> str:
    if name == "__str__":
        return capfirst(info.verbose_name)
    return capfirst(str(label_for_field(name, info.model, info.model_admin)))


def _rows(info: ModelInfo, columns: list[str], objects: list[Model]) -> list[dict[str, Any]]:
    return [
        {"cells": [_cell(info, name, obj) for name in columns], "urls": _urls(info, obj)}
        for obj in objects
    ]


def _related_url(value: Any) -> str | None:
    """The Explorer detail page of a related object, when its model is registered."""
    if not isinstance(value, Model):
        return None
    related = explorer.get_model_info(type(value))
    if related is None:
        return None
    return reverse("explorer:detail", kwargs={**related.url_kwargs, "pk": value.pk})


def _fields(info: ModelInfo, obj: Model) -> list[tuple[str, Any, str | None]]:
    """(label, display value, link) for every field of ``obj``, many-to-many included.

    Hidden fields (``explorer_hidden_fields``) are left out. A relation links to the related
    object's Explorer page when that model is registered.
    """
    shown = []
    for field in [*info.model._meta.fields, *info.model._meta.many_to_many]:
        if field.name in info.hidden_fields:
            continue
        url = None
        if field.many_to_many:
            value = ", ".join(str(related) for related in getattr(obj, field.name).all())
            display = value or EMPTY
        else:
            try:
                value = getattr(obj, field.name)
            except ObjectDoesNotExist:
                value = None
            display = display_for_field(value, field, EMPTY)
            if field.is_relation:
                url = _related_url(value)
        shown.append((capfirst(str(field.verbose_name)), display, url))
    return shown


def _page_number(request: HttpRequest) -> int:
    raw = request.GET.get("page", "1")
    try:
        number = int(raw)
    except ValueError:
        raise ExplorerError(400, f"?page= must be a whole number, not {raw!r}.") from None
    if number < 1:
        raise ExplorerError(400, f"?page= must be 1 or more, not {number}.")
    return number


def _ordering(info: ModelInfo, request: HttpRequest) -> tuple[list[str], str | None]:
    """The ORM ordering for ``?o=`` (default ordering when absent) and the column sorted by."""
    raw = request.GET.get("o", "")
    if not raw:
        return info.ordering, None
    column = raw.removeprefix("-")
    order_field = info.order_field(column)
    if order_field is None:
        sortable = [name for name in info.list_fields if info.order_field(name)]
        raise ExplorerError(
            400,
            f"Cannot order by {raw!r}: sortable columns are "
            f"{', '.join(sortable) or 'none'} (prefix '-' for descending).",
        )
    descending = raw.startswith("-")
    return [f"-{order_field}" if descending else order_field, "-pk"], raw


def _related_columns(info: ModelInfo, columns: list[str]) -> list[str]:
    names = []
    for name in columns:
        field = info.model_field(name)
        if field is not None and field.many_to_one:
            names.append(field.name)
    return names


# -- pages ----------------------------------------------------------------------------------


@explorer_view
@require_safe
async def index(request: HttpRequest) -> HttpResponse:
    """The registered models by group, each with its row count."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for info in explorer.get_models():
        count = await info.model._default_manager.acount()
        groups.setdefault(info.group, []).append(
            {"info": info, "count": count, "url": reverse("explorer:list", kwargs=info.url_kwargs)}
        )
    return TemplateResponse(request, "explorer/index.html", {"title": "Explorer", "groups": groups})


@explorer_view
@require_safe
async def model_list(request: HttpRequest, app_label: str, model_name: str) -> HttpResponse:
    """Rows of one model: searchable (``?q=``), sortable (``?o=``), paginated (``?page=``)."""
    info = _model_info(app_label, model_name)
    columns = info.list_fields
    queryset: QuerySet = info.model._default_manager.all()

    query = request.GET.get("q", "").strip()
    if query:
        if not info.search_fields:
            raise ExplorerError(400, f"{capfirst(info.verbose_name_plural)} are not searchable.")
        try:
            queryset = search_queryset(queryset, info.search_fields, query)
        except InvalidSearch as exc:
            raise ExplorerError(400, str(exc)) from None

    ordering, ordered_by = _ordering(info, request)
    queryset = queryset.order_by(*ordering)
    number = _page_number(request)
    headers = _headers(info, request, columns, ordered_by)

    # The model's widgets evaluate (on the engine's threads) while this page's rows are read.
    widgets_task = asyncio.ensure_future(dashboard.aget_widget_contexts(model=info.model))
    try:
        total = await queryset.acount()
        per_page = info.per_page
        num_pages = max(1, math.ceil(total / per_page))
        if number > num_pages:
            pages = f"{num_pages} page{'' if num_pages == 1 else 's'}"
            raise ExplorerError(404, f"Page {number} does not exist: the list has {pages}.")
        related = _related_columns(info, columns)
        if related:
            queryset = queryset.select_related(*related)
        start = (number - 1) * per_page
        objects = [obj async for obj in queryset[start : start + per_page]]
        rows = await sync_to_async(_rows)(info, columns, objects)
    except BaseException:
        widgets_task.cancel()
        raise
    widgets = await widgets_task

    context = {
        "title": capfirst(info.verbose_name_plural),
        "info": info,
        "urls": _urls(info),
        "headers": headers,
        "rows": rows,
        "widgets": widgets,
        "query": query,
        "searchable": bool(info.search_fields),
        "total": total,
        "page": {
            "number": number,
            "count": num_pages,
            "first": start + 1 if total else 0,
            "last": start + len(objects),
            "previous": _query_string(request, page=number - 1) if number > 1 else None,
            "next": _query_string(request, page=number + 1) if number < num_pages else None,
        },
    }
    return TemplateResponse(request, "explorer/list.html", context)


def _headers(
    info: ModelInfo, request: HttpRequest, columns: list[str], ordered_by: str | None
) -> list[dict[str, Any]]:
    headers = []
    for name in columns:
        sortable = info.order_field(name) is not None
        direction = None
        if ordered_by in (name, f"-{name}"):
            direction = "desc" if ordered_by.startswith("-") else "asc"
        toggled = f"-{name}" if direction == "asc" else name
        headers.append(
            {
                "name": name,
                "label": _column_label(info, name),
                "sortable": sortable,
                "direction": direction,
                "url": _query_string(request, o=toggled, page=None) if sortable else None,
            }
        )
    return headers


@explorer_view
@require_safe
async def detail(request: HttpRequest, app_label: str, model_name: str, pk: str) -> HttpResponse:
    """Every field of one object."""
    info = _model_info(app_label, model_name)
    obj = await _get_object(info, pk)
    fields = await sync_to_async(_fields)(info, obj)
    context = {
        "title": await sync_to_async(str)(obj),
        "info": info,
        "object": obj,
        "fields": fields,
        "urls": _urls(info, obj),
    }
    return TemplateResponse(request, "explorer/detail.html", context)


# -- writes ---------------------------------------------------------------------------------
#
# Edit and delete pages carry the row's version (explorer.versions). A POST re-reads the row in
# its write transaction and refuses with 409 when the row changed since the page was shown.


def _version_fields(info: ModelInfo) -> list[str]:
    """The fields a row's version covers: the edit form's, for the delete page too.

    Never a hidden field: the signed token carries the values readably.
    """
    return [name for name in info.form_class.base_fields if name not in info.hidden_fields]


def _locked_row(info: ModelInfo, pk: str, not_done: str) -> Model:
    """The row as it is now, read inside the write transaction and locked against other writers.

    ``select_for_update()`` where the backend has row locks; SQLite has none, but its IMMEDIATE
    transactions (the project's setting) already admit one writer at a time.
    """
    queryset = info.model._default_manager.all()
    if connections[router.db_for_write(info.model)].features.has_select_for_update:
        queryset = queryset.select_for_update()
    try:
        return queryset.get(pk=pk)
    except ObjectDoesNotExist:
        raise ExplorerError(
            404,
            f"This {info.verbose_name} (primary key {pk!r}) no longer exists: it was deleted "
            f"after the page was shown. {not_done}",
        ) from None
    except (ValueError, TypeError, ValidationError):
        raise ExplorerError(
            404, f"No {info.verbose_name} with primary key {pk!r} exists."
        ) from None


def _seen(info: ModelInfo, token: str | None, row: Model, not_done: str) -> Snapshot:
    """The snapshot the submitted page showed; a 400 when its version field is unusable."""
    try:
        return read_token(token, row)
    except InvalidVersion as exc:
        raise ExplorerError(
            400,
            f"The form's version field ({VERSION_FIELD}) {exc}, so the Explorer cannot tell "
            f"whether this {info.verbose_name} changed since the page was shown. {not_done} "
            "Reload the page and try again.",
        ) from None


@dataclass
class _Outcome:
    """What a POST to the edit or delete page did, and what its page shows if it was refused."""

    status: int  # 302: done; 400: invalid form; 409: changed meanwhile or blocked
    row: Model
    label: str  # the row's str() as the request found it
    version: str = ""  # the token for the next submit
    changes: tuple[Change, ...] = ()
    form: ModelForm | None = None
    blocked: str | None = None  # why protected rows prevent a delete


def _edit_row(info: ModelInfo, pk: str, data: Any, files: Any, token: str | None) -> _Outcome:
    """Validate and save the form over the row as it is now, unless it changed since shown."""
    with transaction.atomic(using=router.db_for_write(info.model)):
        row = _locked_row(info, pk, "Your changes were not saved.")
        seen = _seen(info, token, row, "Nothing was saved.")
        now = snapshot(row, _version_fields(info))
        label = str(row)
        form = info.form_class(data, files, instance=row)
        valid = form.is_valid()  # also on a conflict: its page shows the field errors too
        if now.version != seen.version:
            return _Outcome(409, row, label, now.token(), tuple(changes(seen, now)), form)
        if not valid:
            return _Outcome(400, row, label, now.token(), form=form)
        return _Outcome(302, form.save(), label)


def _delete_row(info: ModelInfo, pk: str, token: str | None) -> _Outcome:
    """Delete the row unless it changed since the confirmation page or protected rows block it."""
    with transaction.atomic(using=router.db_for_write(info.model)):
        row = _locked_row(info, pk, "There is nothing left to delete.")
        seen = _seen(info, token, row, "Nothing was deleted.")
        now = snapshot(row, _version_fields(info))
        label = str(row)
        if now.version != seen.version:
            return _Outcome(409, row, label, now.token(), tuple(changes(seen, now)))
        blocked = _delete(row)
        return _Outcome(409 if blocked else 302, row, label, blocked=blocked)


def _delete(obj: Model) -> str | None:
    """Delete ``obj`` (and what cascades); a message instead when protected rows refer to it."""
    try:
        with transaction.atomic(using=router.db_for_write(type(obj))):
            obj.delete()
    except (ProtectedError, RestrictedError) as exc:
        blocking = sorted(str(related) for related in exc.args[1])
        shown = ", ".join(blocking[:10]) + (
            f" and {len(blocking) - 10} more" if len(blocking) > 10 else ""
        )
        return f"It cannot be deleted while these refer to it: {shown}."
    return None


async def _shown_row(info: ModelInfo, pk: str) -> _Outcome:
    """A GET of the edit or delete page: the row, its label and its current version."""
    obj = await _get_object(info, pk)

    def state() -> _Outcome:
        return _Outcome(200, obj, str(obj), snapshot(obj, _version_fields(info)).token())

    return await sync_to_async(state)()


def _form_response(
    request: HttpRequest, info: ModelInfo, form: ModelForm, outcome: _Outcome | None
) -> HttpResponse:
    """The create page (no ``outcome``) or the edit page of ``outcome.row``."""
    obj = outcome.row if outcome else None
    context = {
        "title": f"Edit {outcome.label}" if outcome else f"Add {info.verbose_name}",
        "info": info,
        "object": obj,
        "form": form,
        "version": outcome.version if outcome else "",
        "version_field": VERSION_FIELD,
        "changes": outcome.changes if outcome else (),
        "conflict": (
            f"Someone changed this {info.verbose_name} while you were editing it, so nothing was "
            "saved. Your input is kept below: check their change, then save again to store your "
            "values over theirs."
        ),
        "urls": _urls(info, obj),
    }
    status = outcome.status if outcome else (400 if form.is_bound else 200)
    return TemplateResponse(request, "explorer/form.html", context, status=status)


def _save(form: ModelForm) -> Model:
    with transaction.atomic(using=router.db_for_write(form._meta.model)):
        return form.save()


@explorer_view
@require_http_methods(["GET", "POST"])
async def create(request: HttpRequest, app_label: str, model_name: str) -> HttpResponse:
    """A form for a new object."""
    info = _writable(_model_info(app_label, model_name))
    if request.method != "POST":
        return _form_response(request, info, info.form_class(), None)
    form = info.form_class(request.POST, request.FILES)
    if not await sync_to_async(form.is_valid)():
        return _form_response(request, info, form, None)
    saved = await sync_to_async(_save)(form)
    label = await sync_to_async(str)(saved)
    messages.success(request, f"{capfirst(info.verbose_name)} “{label}” was created.")
    return redirect(reverse("explorer:detail", kwargs={"pk": saved.pk, **info.url_kwargs}))


@explorer_view
@require_http_methods(["GET", "POST"])
async def edit(request: HttpRequest, app_label: str, model_name: str, pk: str) -> HttpResponse:
    """A form for an existing object; a save is refused (409) if the row changed meanwhile."""
    info = _writable(_model_info(app_label, model_name))
    if request.method != "POST":
        outcome = await _shown_row(info, pk)
        return _form_response(request, info, info.form_class(instance=outcome.row), outcome)
    token = request.POST.get(VERSION_FIELD)
    outcome = await sync_to_async(_edit_row)(info, pk, request.POST, request.FILES, token)
    if outcome.status != 302:
        assert outcome.form is not None  # a refused save carries its bound form
        return _form_response(request, info, outcome.form, outcome)
    label = await sync_to_async(str)(outcome.row)
    messages.success(request, f"{capfirst(info.verbose_name)} “{label}” was saved.")
    return redirect(reverse("explorer:detail", kwargs={"pk": outcome.row.pk, **info.url_kwargs}))


@explorer_view
@require_http_methods(["GET", "POST"])
async def delete(request: HttpRequest, app_label: str, model_name: str, pk: str) -> HttpResponse:
    """GET asks for confirmation; only a POST deletes, and only the row as it was shown."""
    info = _writable(_model_info(app_label, model_name))
    if request.method == "POST":
        token = request.POST.get(VERSION_FIELD)
        outcome = await sync_to_async(_delete_row)(info, pk, token)
        if outcome.status == 302:
            name = capfirst(info.verbose_name)
            messages.success(request, f"{name} “{outcome.label}” was deleted.")
            return redirect(reverse("explorer:list", kwargs=info.url_kwargs))
    else:
        outcome = await _shown_row(info, pk)
    title = f"Cannot delete {outcome.label}" if outcome.blocked else f"Delete {outcome.label}?"
    context = {
        "title": title,
        "info": info,
        "object": outcome.row,
        "label": outcome.label,
        "blocked": outcome.blocked,
        "changes": outcome.changes,
        "conflict": (
            f"This {info.verbose_name} changed after the page was shown, so it was not deleted. "
            "Check the change, then confirm again to delete it as it is now."
        ),
        "version": outcome.version,
        "version_field": VERSION_FIELD,
        "urls": _urls(info, outcome.row),
    }
    return TemplateResponse(request, "explorer/confirm_delete.html", context, status=outcome.status)
