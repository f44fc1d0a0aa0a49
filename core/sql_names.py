"""Names in hand-written SQL taken from the models, never typed in: tables and columns
from `_meta`, enum values from the choices, quoted by psycopg (as Zulip composes its
counts with `Identifier(..._meta.db_table)`). A renamed field or a new choice value then
changes the statements with it, and a name that no longer exists fails at import.

INSERTs name what they write through `insert_into`, which records it:
tests/core/test_sql_names.py holds every recorded INSERT to its model, so a field added
without a `db_default` is caught before a statement silently leaves it out."""

from dataclasses import dataclass

from django.db import models
from psycopg import sql


@dataclass(frozen=True)
class InsertColumns:
    model: type[models.Model]
    fields: tuple[str, ...]


# Every INSERT composed here, and every statement composed by `compose`, in import order.
INSERTS: list[InsertColumns] = []
STATEMENTS: list[str] = []


def table(model: type[models.Model]) -> str:
    return sql.Identifier(model._meta.db_table).as_string(None)


def column_name(model: type[models.Model], field: str) -> str:
    """A field's column, unquoted (a foreign key `node` -> `node_id`)."""
    found = model._meta.get_field(field)
    if not isinstance(found, models.Field) or not found.column:
        raise ValueError(f"{model.__name__}.{field} is not a column")
    return found.column


def column(model: type[models.Model], field: str) -> str:
    return sql.Identifier(column_name(model, field)).as_string(None)


def columns(model: type[models.Model], *fields: str) -> str:
    return ", ".join(column(model, f) for f in fields)


def value(choice: str) -> str:
    """A choice's value as an SQL literal (`Job.State.PLACED` -> `'placed'`)."""
    return sql.Literal(str(choice)).as_string(None)


def values(*choices: str) -> str:
    return ", ".join(value(c) for c in choices)


def insert_into(model: type[models.Model], *fields: str) -> str:
    """`"table" ("col", ...)` for an INSERT that writes `fields`, every other column of the
    model taking its `db_default` (or the primary key its sequence)."""
    INSERTS.append(InsertColumns(model, fields))
    return f"{table(model)} ({columns(model, *fields)})"



class _Choices:
    def __init__(self, choices: type[models.Choices]) -> None:
        self._choices = choices

    def __getattr__(self, name: str) -> str:
        return value(getattr(self._choices, name))


class _Names:
    """`{Node}` the table, `{Node.status}` a column, `{Node.Status.ONLINE}` a value."""

    def __init__(self, model: type[models.Model]) -> None:
        self._model = model

    def __format__(self, spec: str) -> str:
        return table(self._model)

    def __getattr__(self, name: str) -> "str | _Choices":
        found = getattr(self._model, name, None)
        if isinstance(found, type) and issubclass(found, models.Choices):
            return _Choices(found)
        return column(self._model, name)


def compose_part(template: str, *models_used: type[models.Model], **parts: str) -> str:
    """A piece of a statement with `{Model}`, `{Model.field}` and `{Model.Choice.NAME}`
    written out from the models, and `{part}`s from `parts`."""
    names: dict[str, object] = {m.__name__: _Names(m) for m in models_used}
    return template.format(**names, **parts)


def compose(template: str, *models_used: type[models.Model], **parts: str) -> str:
    """A whole statement, as `compose_part` writes it, recorded in STATEMENTS, which
    tests/core/test_sql_names.py prepares against the schema."""
    statement = compose_part(template, *models_used, **parts)
    STATEMENTS.append(statement)
    return statement
