"""Migration operations that change the indexes of large, busy tables without stopping their writes.

Django's own operations lock a table against writes while PostgreSQL builds an index, and turning off a
foreign key's ``db_index`` makes Django drop and re-add the foreign key constraint, which checks every row
while the table and the table it references are locked. These do only what is needed, on PostgreSQL with
``CONCURRENTLY`` (so the migrations that use them are not atomic); elsewhere they are the plain operations.
(The leading underscore keeps Django's migration loader from taking this module for a migration.)
"""

from __future__ import annotations

from typing import Any

from django.db import migrations
from django.db.migrations.operations.fields import FieldOperation

__all__ = ["AddIndexOnline", "DropForeignKeyIndex", "RemoveIndexOnline"]


def _online(schema_editor: Any) -> dict[str, bool]:
    """The keywords of the schema editor's index methods that keep the table writable."""
    return {"concurrently": True} if schema_editor.connection.vendor == "postgresql" else {}


def _add(operation: Any, schema_editor: Any, state: Any, app_label: str, index: Any) -> None:
    model = state.apps.get_model(app_label, operation.model_name)
    if operation.allow_migrate_model(schema_editor.connection.alias, model):
        schema_editor.add_index(model, index, **_online(schema_editor))


def _remove(operation: Any, schema_editor: Any, state: Any, app_label: str, index: Any) -> None:
    model = state.apps.get_model(app_label, operation.model_name)
    if operation.allow_migrate_model(schema_editor.connection.alias, model):
        schema_editor.remove_index(model, index, **_online(schema_editor))


class AddIndexOnline(migrations.AddIndex):
    """AddIndex; on PostgreSQL built with CREATE INDEX CONCURRENTLY (rows keep being written meanwhile)."""

    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        _add(self, schema_editor, to_state, app_label, self.index)

    def database_backwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        _remove(self, schema_editor, from_state, app_label, self.index)


class RemoveIndexOnline(migrations.RemoveIndex):
    """RemoveIndex; on PostgreSQL with DROP INDEX CONCURRENTLY (it waits for nobody's lock, holds none)."""

    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        index = from_state.models[app_label, self.model_name_lower].get_index_by_name(self.name)
        _remove(self, schema_editor, from_state, app_label, index)

    def database_backwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        index = to_state.models[app_label, self.model_name_lower].get_index_by_name(self.name)
        _add(self, schema_editor, to_state, app_label, index)


class DropForeignKeyIndex(FieldOperation):
    """A foreign key's ``db_index`` turned off: only the index Django made for it is dropped.

    The constraint itself is left as it is (Django's AlterField would drop it and add it again, checking
    every row under a lock); going back makes the index again. The field is otherwise the one in the state.
    """

    def __init__(self, model_name: str, name: str) -> None:
        super().__init__(model_name, name)

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        return self.__class__.__name__, [], {"model_name": self.model_name, "name": self.name}

    def state_forwards(self, app_label: str, state: Any) -> None:
        field = state.models[app_label, self.model_name_lower].fields[self.name].clone()
        field.db_index = False
        state.alter_field(app_label, self.model_name_lower, self.name, field, True)

    def _sql(self, app_label: str, schema_editor: Any, state: Any, create: bool) -> None:
        model = state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        quote = schema_editor.quote_name
        table, column = model._meta.db_table, model._meta.get_field(self.name).column
        name = quote(schema_editor._create_index_name(table, [column], suffix=""))  # Django's own name for it
        concurrently = "CONCURRENTLY " if _online(schema_editor) else ""
        if create:
            schema_editor.execute(
                f"CREATE INDEX {concurrently}IF NOT EXISTS {name} ON {quote(table)} ({quote(column)})"
            )
        else:
            schema_editor.execute(f"DROP INDEX {concurrently}IF EXISTS {name}")

    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        self._sql(app_label, schema_editor, from_state, create=False)

    def database_backwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        self._sql(app_label, schema_editor, to_state, create=True)

    def describe(self) -> str:
        return f"Drop the index of its own of {self.model_name}.{self.name}"
