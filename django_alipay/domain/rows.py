"""Row helpers shared by the domain modules: bring the caller's instance up to date from its locked row, and
write chosen columns of a row the caller holds in one constant statement."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from django.db import connections, models
from django.db.models.signals import post_save, pre_save

__all__ = ["copy_into", "write_columns"]


def copy_into(target: models.Model, source: models.Model) -> None:
    """Refresh the caller's instance from the locked row, so it never holds a stale status or balance.

    Copies every concrete field of ``source`` (the row read under lock) onto ``target`` (the instance the
    caller passed in); no query.
    """
    for field in source._meta.concrete_fields:
        setattr(target, field.attname, getattr(source, field.attname))


@functools.cache
def _update_statement(
    model: type[models.Model], names: tuple[str, ...], alias: str
) -> tuple[str, tuple[Any, ...]]:
    """``UPDATE`` of the columns of ``names`` of one row of ``model`` by primary key, and their fields."""
    meta = model._meta
    fields = tuple(dict.fromkeys(meta.get_field(name) for name in names))
    quote = connections[alias].ops.quote_name
    columns = ", ".join(f"{quote(str(field.column))} = %s" for field in fields)  # type: ignore[union-attr]
    pk = quote(str(meta.pk.column))
    return f"UPDATE {quote(meta.db_table)} SET {columns} WHERE {pk} = %s", fields  # noqa: S608 (our names)


def write_columns(instance: models.Model, names: Sequence[str]) -> None:
    """Write the columns of ``names`` of ``instance``'s row as the instance holds them, like
    ``instance.save(update_fields=names)``, in one constant statement (no ORM compilation on every call).

    ``auto_now`` fields among ``names`` get the time as ``save()`` gives it. When a receiver listens to the
    model's ``pre_save`` or ``post_save`` signal, ``save()`` itself runs, so that receiver still hears of the
    write. For a row the caller knows exists (it holds its lock).
    """
    model = type(instance)
    if pre_save.has_listeners(model) or post_save.has_listeners(model):
        instance.save(update_fields=list(names))
        return
    alias = instance._state.db or model._default_manager.db
    connection = connections[alias]
    sql, fields = _update_statement(model, tuple(names), alias)
    values = [field.get_db_prep_save(field.pre_save(instance, False), connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*values, instance.pk])
