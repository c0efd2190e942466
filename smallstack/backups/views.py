"""The staff backups page, downloading a backup, and the "Back up now" button."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any, BinaryIO, cast

from asgiref.sync import sync_to_async
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_POST

from smallstack.access import staff_required
from smallstack.backups import conf, files, humanize, service
from smallstack.backups.errors import BackupError
from smallstack.backups.models import BackupRecord
from smallstack.backups.widgets import card_data

CONTENT_TYPES = {"sqlite": "application/gzip", "postgresql": "application/octet-stream"}


def _rows() -> dict[str, Any]:
    """The page's data (ORM and file system, so it runs on a thread)."""
    directory = conf.backup_dir()
    now = timezone.now()
    rows = []
    for record in BackupRecord.objects.order_by("-created_at", "-id")[:500]:
        present = (
            files.is_backup_name(record.file_name) and (directory / record.file_name).is_file()
        )
        rows.append(
            {
                "record": record,
                "age": humanize.age(now - record.created_at),
                "size": humanize.size(record.size) if record.status == BackupRecord.OK else "",
                "duration": humanize.seconds(record.duration),
                "present": present,
            }
        )
    return {
        "rows": rows,
        "summary": card_data(now),
        "directory": directory,
        "keep": conf.get("KEEP"),
        "max_age_hours": conf.get("MAX_AGE_HOURS"),
    }


@staff_required
async def backups_page(request: HttpRequest) -> HttpResponse:
    """Every backup record, newest first, with downloads and the "Back up now" button."""
    context = await sync_to_async(_rows, thread_sensitive=False)()
    context["title"] = "Backups"
    context["running"] = service.button_lock.locked()
    return TemplateResponse(request, "backups/backups.html", context)


async def _chunks(handle: BinaryIO) -> AsyncIterator[bytes]:
    """Read a file in chunks on a thread each, closing it at the end (or on disconnect)."""
    try:
        while chunk := await asyncio.to_thread(handle.read, files.CHUNK):
            yield chunk
    finally:
        await asyncio.to_thread(handle.close)


def _open(record: BackupRecord) -> tuple[BinaryIO, int]:
    path = conf.backup_dir() / record.file_name
    if not files.is_backup_name(record.file_name) or not path.is_file():
        raise Http404(
            f"The file of backup #{record.pk} ({record.file_name}) is no longer in the backup "
            "directory: it was deleted or moved."
        )
    handle = open(path, "rb")  # noqa: SIM115 — closed by _chunks
    return handle, os.fstat(handle.fileno()).st_size


@staff_required
async def download(request: HttpRequest, pk: int) -> HttpResponse:
    """Stream the file of a good backup record as an attachment; 404 for anything else."""
    record = await BackupRecord.objects.filter(pk=pk, status=BackupRecord.OK).afirst()
    if record is None:
        raise Http404(f"There is no downloadable backup #{pk}.")
    handle, size = await sync_to_async(_open, thread_sensitive=False)(record)
    response = StreamingHttpResponse(
        _chunks(handle), content_type=CONTENT_TYPES.get(record.vendor, "application/octet-stream")
    )
    response["Content-Length"] = str(size)
    response["Content-Disposition"] = content_disposition_header(True, record.file_name)
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return cast(HttpResponse, response)  # staff_required is typed for plain responses


@require_POST
@staff_required
async def back_up_now(request: HttpRequest) -> HttpResponse:
    """Run a backup on a thread (one at a time per process) and come back with its result."""
    if not service.button_lock.acquire(blocking=False):
        messages.warning(request, "A backup is already running; its result will be listed here.")
        return redirect("backups:page")
    try:
        record = await sync_to_async(service.run_in_thread, thread_sensitive=False)()
    except BackupError as exc:
        messages.error(request, f"Backup failed: {exc}")
    else:
        messages.success(
            request,
            f"Backed up to {record.file_name} ({humanize.size(record.size)} in "
            f"{humanize.seconds(record.duration)}).",
        )
    finally:
        service.button_lock.release()
    return redirect("backups:page")
