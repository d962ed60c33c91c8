"""Row helpers shared by the domain modules: bring the caller's instance up to date from its locked row, and
read a row or write chosen columns of one in a constant statement."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, TypeVar

from django.db import connections, models
from django.db.models.signals import post_save, pre_save

__all__ = ["add_to_columns", "copy_into", "select_one", "select_with_parent_locked", "write_columns"]

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


Converters = tuple[tuple[Any, list[Any]], ...]


@functools.cache
def _converters(model: type[models.Model], alias: str) -> Converters:
    """Each concrete column's expression and the functions that turn its database value into Python's."""
    connection = connections[alias]
    found = []
    for field in model._meta.concrete_fields:
        col = field.get_col(model._meta.db_table)
        found.append((col, [*connection.ops.get_db_converters(col), *col.get_db_converters(connection)]))
    return tuple(found)


def _instance(model: type[M], alias: str, attnames: tuple[str, ...], converters: Converters, row: Any) -> M:
    connection = connections[alias]
    values = []
    for value, (col, functions) in zip(row, converters, strict=True):
        for function in functions:
            value = function(value, col, connection)
        values.append(value)
    return model.from_db(alias, attnames, values)


def _column_list(model: type[models.Model], alias: str) -> str:
    quote = connections[alias].ops.quote_name
    table = quote(model._meta.db_table)
    return ", ".join(f"{table}.{quote(str(field.column))}" for field in model._meta.concrete_fields)


@functools.cache
def _select_statement(
    model: type[models.Model], names: tuple[str, ...], alias: str, lock: bool
) -> tuple[str, tuple[str, ...], Converters]:
    """``SELECT`` of every concrete column of the row of ``model`` whose ``names`` columns equal the
    parameters (``FOR UPDATE`` with ``lock``), the attnames in column order and each column's converters."""
    quote = connections[alias].ops.quote_name
    meta = model._meta
    table = quote(meta.db_table)
    where = " AND ".join(f"{table}.{quote(str(meta.get_field(name).column))} = %s" for name in names)  # type: ignore[union-attr]
    columns = _column_list(model, alias)
    sql = f"SELECT {columns} FROM {table} WHERE {where}{' FOR UPDATE' if lock else ''}"  # noqa: S608 (our names)
    attnames = tuple(field.attname for field in meta.concrete_fields)
    return sql, attnames, _converters(model, alias)


def select_one(model: type[M], *, lock: bool = False, **columns: Any) -> M | None:
    """The row of ``model`` whose columns equal ``columns`` (a unique key), as an instance, like
    ``model.objects.filter(**columns).first()`` (with ``select_for_update()`` when ``lock``), in one constant
    statement: no ORM compilation on every call. The names are attnames (``merchant_id``, not ``merchant``).
    """
    alias = model._default_manager.db
    sql, attnames, converters = _select_statement(model, tuple(columns), alias, lock)
    with connections[alias].cursor() as cursor:
        cursor.execute(sql, list(columns.values()))
        row = cursor.fetchone()
    return None if row is None else _instance(model, alias, attnames, converters, row)


@functools.cache
def _joined_statement(model: type[models.Model], parent: str, alias: str) -> str:
    quote = connections[alias].ops.quote_name
    meta = model._meta
    field = meta.get_field(parent)
    other: Any = field.related_model
    table, other_table = quote(meta.db_table), quote(other._meta.db_table)
    on = f"{other_table}.{quote(str(other._meta.pk.column))} = {table}.{quote(str(field.column))}"  # type: ignore[union-attr]
    columns = f"{_column_list(model, alias)}, {_column_list(other, alias)}"
    return (
        f"SELECT {columns} FROM {table} INNER JOIN {other_table} ON {on} "  # noqa: S608 (our own names)
        f"WHERE {table}.{quote(str(meta.pk.column))} = %s FOR UPDATE OF {other_table}, {table}"
    )


def select_with_parent_locked(model: type[M], parent: str, pk: Any) -> M:
    """The row ``pk`` of ``model``, with the row its foreign key ``parent`` points to cached on it; both
    locked, the parent's first (``FOR UPDATE OF parent, self``): like ``model.objects.select_related(parent)
    .select_for_update(of=(parent, "self")).get(pk=pk)`` in one constant statement. Raises the model's
    DoesNotExist when there is no such row. On a database without ``FOR UPDATE OF``, that ORM query.
    """
    alias = model._default_manager.db
    connection = connections[alias]
    if not connection.features.has_select_for_update_of:
        return model._default_manager.select_related(parent).select_for_update(of=(parent, "self")).get(pk=pk)
    field: Any = model._meta.get_field(parent)
    other: Any = field.related_model
    with connection.cursor() as cursor:
        cursor.execute(_joined_statement(model, parent, alias), [pk])
        row = cursor.fetchone()
    if row is None:
        raise model.DoesNotExist(f"{model._meta.object_name} matching query does not exist.")  # type: ignore[attr-defined]
    width = len(model._meta.concrete_fields)
    mine = tuple(f.attname for f in model._meta.concrete_fields)
    theirs = tuple(f.attname for f in other._meta.concrete_fields)
    instance = _instance(model, alias, mine, _converters(model, alias), row[:width])
    related = _instance(other, alias, theirs, _converters(other, alias), row[width:])
    field.set_cached_value(instance, related)
    return instance


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
