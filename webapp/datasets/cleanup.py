"""Expiry of abandoned uploads: partial files nobody will finish, and the quota they hold."""

from __future__ import annotations

import datetime
import shutil

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from webapp.datasets.models import Dataset


def expire_abandoned_uploads(now: datetime.datetime | None = None) -> list[int]:
    """Delete uploads with no chunk for ``UPLOAD_ABANDON_HOURS``; return their ids.

    Last activity is ``Dataset.updated_at``: set when the upload starts and by every
    stored chunk (``upload.append_chunk``). Only rows still ``uploading`` are touched;
    validating, ready and rejected datasets never are.

    The row is deleted, not moved to a terminal state: an unfinished upload has no
    content to show, nothing references it (runs take ready datasets only), and deleting
    is what the dataset page's Delete already does (files, then row). A row kept in a
    new state would need every quota and listing query taught to skip it, and selecting
    the same file again starts a fresh upload either way.

    Safe when two run at once, and against a chunk in flight: the rows are locked with
    ``SELECT ... FOR UPDATE SKIP LOCKED`` under the same conditions, so a row that another
    cleaner or ``append_chunk`` holds (it writes the file under that lock) is skipped,
    and a row whose chunk committed meanwhile no longer matches. The files are removed
    before the commit: if the commit then failed, the row would remain without a file,
    which ``sync_received_bytes`` repairs and the next pass expires, whereas removing
    them after the commit could leave a folder that no row points to.
    """
    now = now or timezone.now()
    cutoff = now - datetime.timedelta(hours=settings.UPLOAD_ABANDON_HOURS)
    with transaction.atomic():
        abandoned = list(
            Dataset.objects.select_for_update(skip_locked=True)
            .filter(state=Dataset.State.UPLOADING, updated_at__lt=cutoff)
            .order_by("pk")
        )
        if not abandoned:
            return []
        ids = [d.pk for d in abandoned]
        Dataset.objects.filter(pk__in=ids).delete()
        for dataset in abandoned:
            # storage_dir is built from the id only, never from anything the browser sent.
            shutil.rmtree(dataset.storage_dir, ignore_errors=True)
    return ids
