"""Schema rules of the lake: no silent schema change.

A write whose columns differ from the table's (added, missing, or of another type) is refused
with `SchemaMismatchError` listing every difference, unless the caller passes `evolve=True`:
- overwrite with `evolve`: the new schema replaces the old one;
- append / replace partitions with `evolve`: new columns are added (old rows read them as null),
  columns missing from the new data are kept (new rows hold null); type changes stay refused.
Column order never matters: data is aligned to the table's order by name. Nullability is not
part of the contract (Parquet files written by Spark are all nullable), so every field is stored
nullable.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql.types import ArrayType, DataType, MapType, StructField, StructType

from cdp.errors import SchemaMismatchError


def nullable(data_type: DataType) -> DataType:
    """The same type with every field, element and value nullable."""
    if isinstance(data_type, StructType):
        return StructType([StructField(f.name, nullable(f.dataType), True, f.metadata) for f in data_type])
    if isinstance(data_type, ArrayType):
        return ArrayType(nullable(data_type.elementType), True)
    if isinstance(data_type, MapType):
        return MapType(nullable(data_type.keyType), nullable(data_type.valueType), True)
    return data_type


@dataclass(frozen=True)
class SchemaDiff:
    added: tuple[str, ...]
    missing: tuple[str, ...]
    changed: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not (self.added or self.missing or self.changed)

    def describe(self) -> str:
        parts = []
        if self.added:
            parts.append("new columns " + ", ".join(self.added))
        if self.missing:
            parts.append("missing columns " + ", ".join(self.missing))
        if self.changed:
            parts.append("changed types " + ", ".join(self.changed))
        return "; ".join(parts)


def diff(table: StructType, incoming: StructType) -> SchemaDiff:
    old = {f.name: nullable(f.dataType) for f in table}
    new = {f.name: nullable(f.dataType) for f in incoming}
    return SchemaDiff(
        added=tuple(n for n in new if n not in old),
        missing=tuple(n for n in old if n not in new),
        changed=tuple(
            f"{n} ({old[n].simpleString()} -> {new[n].simpleString()})" for n in new if n in old and old[n] != new[n]
        ),
    )


def resolve(
    table_name: str,
    table: StructType | None,
    incoming: StructType,
    *,
    replace: bool,
    evolve: bool,
) -> StructType:
    """The schema the table will have after this write, or `SchemaMismatchError`.

    Args:
        table_name: logical name, for the error message.
        table: current schema, None for a new table.
        incoming: schema of the data being written.
        replace: True for a full overwrite (the old rows go away).
        evolve: the caller accepts a schema change.
    """
    incoming = nullable(incoming)
    _check_unique(table_name, incoming)
    if table is None:
        return incoming
    change = diff(table, incoming)
    if change.empty:
        return nullable(table)
    if not evolve:
        raise SchemaMismatchError(
            f"table {table_name}: schema change refused ({change.describe()}); pass evolve=True to accept it"
        )
    if replace:
        return incoming
    if change.changed:
        raise SchemaMismatchError(
            f"table {table_name}: column types cannot change without a full overwrite ({change.describe()})"
        )
    known = {f.name for f in table}
    return StructType(list(nullable(table).fields) + [f for f in incoming if f.name not in known])


def _check_unique(table_name: str, schema: StructType) -> None:
    seen: set[str] = set()
    for name in schema.names:
        if name.lower() in seen:
            raise SchemaMismatchError(f"table {table_name}: column {name} appears twice (names ignore case)")
        seen.add(name.lower())
