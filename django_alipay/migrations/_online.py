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

__all__ = ["AddIndexOnline", "DropForeignKeyIndex", "RemoveIndexOnline"]


def _concurrently(schema_editor: Any) -> bool:
    return bool(schema_editor.connection.vendor == "postgresql")


class AddIndexOnline(migrations.AddIndex):
    """AddIndex; on PostgreSQL built with CREATE INDEX CONCURRENTLY (rows keep being written meanwhile)."""

    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            if _concurrently(schema_editor):
                schema_editor.add_index(model, self.index, concurrently=True)
            else:
                schema_editor.add_index(model, self.index)

    def database_backwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            if _concurrently(schema_editor):
                schema_editor.remove_index(model, self.index, concurrently=True)
            else:
                schema_editor.remove_index(model, self.index)


class RemoveIndexOnline(migrations.RemoveIndex):
    """RemoveIndex; on PostgreSQL with DROP INDEX CONCURRENTLY (it waits for nobody's lock, holds none)."""

    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            index = from_state.models[app_label, self.model_name_lower].get_index_by_name(self.name)
            if _concurrently(schema_editor):
                schema_editor.remove_index(model, index, concurrently=True)
            else:
                schema_editor.remove_index(model, index)

    def database_backwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            index = to_state.models[app_label, self.model_name_lower].get_index_by_name(self.name)
            if _concurrently(schema_editor):
                schema_editor.add_index(model, index, concurrently=True)
            else:
                schema_editor.add_index(model, index)


class DropForeignKeyIndex(migrations.AlterField):
    """AlterField to a foreign key with ``db_index=False`` that only drops the index Django made for it.

    The constraint itself is left as it is (Django's AlterField would drop it and add it again, checking
    every row under a lock); going back makes the index again.
    """

    def _index(self, app_label: str, schema_editor: Any, state: Any) -> tuple[Any, str, str] | None:
        model = state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return None
        column = model._meta.get_field(self.name).column
        table = model._meta.db_table
        return model, table, schema_editor._create_index_name(table, [column], suffix="")

    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        found = self._index(app_label, schema_editor, from_state)
        if found is not None:
            _model, _table, name = found
            concurrently = "CONCURRENTLY " if _concurrently(schema_editor) else ""
            schema_editor.execute(f"DROP INDEX {concurrently}IF EXISTS {schema_editor.quote_name(name)}")

    def database_backwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        found = self._index(app_label, schema_editor, to_state)
        if found is not None:
            model, table, name = found
            column = model._meta.get_field(self.name).column
            concurrently = "CONCURRENTLY " if _concurrently(schema_editor) else ""
            quote = schema_editor.quote_name
            schema_editor.execute(
                f"CREATE INDEX {concurrently}IF NOT EXISTS {quote(name)} ON {quote(table)} ({quote(column)})"
            )

    def describe(self) -> str:
        return f"Drop the index of its own of {self.model_name}.{self.name}"
