"""Row helpers shared by the domain modules: bring the caller's instance up to date from its locked row, and
read a row or write chosen columns of one in a constant statement."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, TypeVar

from django.db import connections, models
from django.db.models.signals import post_save, pre_save

__all__ = ["copy_into", "select_one", "write_columns"]

M = TypeVar("M", bound=models.Model)


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


@functools.cache
def _select_statement(
    model: type[models.Model], names: tuple[str, ...], alias: str, lock: bool
) -> tuple[str, tuple[str, ...], tuple[tuple[Any, list[Any]], ...]]:
    """``SELECT`` of every concrete column of the row of ``model`` whose ``names`` columns equal the
    parameters (``FOR UPDATE`` with ``lock``), the attnames in column order and each column's converters."""
    connection = connections[alias]
    quote = connection.ops.quote_name
    meta = model._meta
    fields = meta.concrete_fields
    table = quote(meta.db_table)
    columns = ", ".join(quote(str(field.column)) for field in fields)
    where = " AND ".join(f"{quote(str(meta.get_field(name).column))} = %s" for name in names)  # type: ignore[union-attr]
    sql = f"SELECT {columns} FROM {table} WHERE {where}{' FOR UPDATE' if lock else ''}"  # noqa: S608 (our names)
    converters = []
    for field in fields:
        col = field.get_col(meta.db_table)
        converters.append((col, [*connection.ops.get_db_converters(col), *col.get_db_converters(connection)]))
    return sql, tuple(field.attname for field in fields), tuple(converters)


def select_one(model: type[M], *, lock: bool = False, **columns: Any) -> M | None:
    """The row of ``model`` whose columns equal ``columns`` (a unique key), as an instance, like
    ``model.objects.filter(**columns).first()`` (with ``select_for_update()`` when ``lock``), in one constant
    statement: no ORM compilation on every call. The names are attnames (``merchant_id``, not ``merchant``).
    """
    alias = model._default_manager.db
    connection = connections[alias]
    sql, attnames, converters = _select_statement(model, tuple(columns), alias, lock)
    with connection.cursor() as cursor:
        cursor.execute(sql, list(columns.values()))
        row = cursor.fetchone()
    if row is None:
        return None
    values = []
    for value, (col, functions) in zip(row, converters, strict=True):
        for function in functions:
            value = function(value, col, connection)
        values.append(value)
    return model.from_db(alias, attnames, values)


@functools.cache
def _add_statement(model: type[models.Model], names: tuple[str, ...], alias: str) -> str:
    """``UPDATE`` adding a parameter to each column of ``names`` of one row of ``model`` by primary key."""
    quote = connections[alias].ops.quote_name
    meta = model._meta
    columns = [quote(str(meta.get_field(name).column)) for name in names]  # type: ignore[union-attr]
    changes = ", ".join(f"{column} = {column} + %s" for column in columns)
    pk = quote(str(meta.pk.column))
    return f"UPDATE {quote(meta.db_table)} SET {changes} WHERE {pk} = %s"  # noqa: S608 (our own names)


def add_to_columns(model: type[models.Model], pk: Any, **amounts: Any) -> None:
    """Add ``amounts`` to the named columns of one row in the database (``F(name) + amount``), like
    ``model.objects.filter(pk=pk).update(...)``, in one constant statement; the caller's instance is left as
    it is."""
    alias = model._default_manager.db
    with connections[alias].cursor() as cursor:
        cursor.execute(_add_statement(model, tuple(amounts), alias), [*amounts.values(), pk])
