"""Writes to the configuration version.

Every configuration model is registered with :func:`track_config_changes`; its
``post_save``, ``post_delete`` and ``m2m_changed`` signals bump :class:`ConfigVersion`.
Bulk operations (``bulk_create``, ``QuerySet.update``/``delete``) send no signals, so the
services that use them call :func:`bump_config_version` themselves. Inside
:func:`config_batch` the bumps collapse into one at the end of the batch.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.db import models, transaction
from django.db.models import F
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.utils import timezone

from tollguard.web.core.models import CONFIG_VERSION_PK, ConfigVersion

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class _Batch:
    changed: bool = False
    closed: bool = False


_batch: ContextVar[_Batch | None] = ContextVar("tollguard_config_batch", default=None)


def bump_config_version() -> int:
    """Increase the configuration version by one and return the new value.

    Call it inside the transaction that makes the change. Inside :func:`config_batch`
    it only records that something changed.
    """
    batch = _batch.get()
    if batch is not None:
        batch.changed = True
        return -1
    return _increment()


def _increment() -> int:
    with transaction.atomic():
        row = ConfigVersion.objects.filter(pk=CONFIG_VERSION_PK)
        # F() makes it one atomic UPDATE: concurrent writers never lose a bump.
        if not row.update(version=F("version") + 1, changed_at=timezone.now()):
            ConfigVersion.objects.get_or_create(pk=CONFIG_VERSION_PK, defaults={"version": 0})
            row.update(version=F("version") + 1, changed_at=timezone.now())
        version: int = ConfigVersion.objects.values_list("version", flat=True).get(
            pk=CONFIG_VERSION_PK
        )
    logger.debug("configuration version is now %d", version)
    return version


@contextmanager
def config_batch() -> Iterator[None]:
    """Make every change inside the block bump the configuration version only once.

    Opens a transaction; the single bump happens at its end, before it commits.
    """
    if _batch.get() is not None:
        yield
        return
    batch = _Batch()
    token = _batch.set(batch)
    try:
        with transaction.atomic():
            yield
            _batch.reset(token)
            batch.closed = True
            if batch.changed:
                _increment()
    finally:
        if not batch.closed:
            _batch.reset(token)


def _on_change(sender: type[models.Model], **kwargs: Any) -> None:
    if kwargs.get("raw"):
        return  # fixtures loading: the loaded data carries its own version
    bump_config_version()


def _on_m2m_change(sender: type[models.Model], action: str, **kwargs: Any) -> None:
    if action in {"post_add", "post_remove", "post_clear"}:
        bump_config_version()


def track_config_changes(*model_classes: type[models.Model]) -> None:
    """Bump the configuration version whenever a row of these models changes."""
    for model in model_classes:
        uid = f"tollguard.config_version.{model._meta.label}"
        post_save.connect(_on_change, sender=model, dispatch_uid=f"{uid}.save")
        post_delete.connect(_on_change, sender=model, dispatch_uid=f"{uid}.delete")
        for field in model._meta.local_many_to_many:
            through = field.remote_field.through
            m2m_changed.connect(_on_m2m_change, sender=through, dispatch_uid=f"{uid}.{field.name}")
