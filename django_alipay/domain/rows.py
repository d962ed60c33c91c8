"""Row helpers shared by the domain modules: bring the caller's instance up to date from its locked row."""

from __future__ import annotations

from django.db import models

__all__ = ["copy_into"]


def copy_into(target: models.Model, source: models.Model) -> None:
    """Refresh the caller's instance from the locked row, so it never holds a stale status or balance.

    Copies every concrete field of ``source`` (the row read under lock) onto ``target`` (the instance the
    caller passed in); no query.
    """
    for field in source._meta.concrete_fields:
        setattr(target, field.attname, getattr(source, field.attname))
