"""`field__any=[...]`: `IN` with the whole list as one array parameter on PostgreSQL.

`id__in=ids` writes one placeholder per id. A delivery chunk's dozen statements each carry 250
of them, and psycopg caches the conversion of no statement with more than 50 parameters, so it
parsed each of them again on every call, Django prepared every value on its own, and each
list length was a prepared statement of its own in PostgreSQL (bench/README.md, item 19).
`id__any=ids` is `id = ANY(%s::bigint[])` there: one parameter, one statement text whatever
the length. On other databases it is `IN`, as `__in` is.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db.models import Field, ForeignObject
from django.db.models.expressions import ColPairs
from django.db.models.fields.related_lookups import RelatedIn
from django.db.models.lookups import In


class _OneArray:
    """`lhs = ANY(%s::type[])` on PostgreSQL for a list of values; `IN` otherwise."""

    def as_postgresql(self: Any, compiler: Any, connection: Any) -> tuple[str, tuple]:
        if self.rhs_is_direct_value() and not isinstance(self.lhs, ColPairs):
            field = self.lhs.output_field
            values = [
                field.get_db_prep_value(value, connection, prepared=True)
                for value in dict.fromkeys(self.rhs)
                if value is not None
            ]
            if not values:
                raise EmptyResultSet
            lhs, lhs_params = self.process_lhs(compiler, connection)
            return f"{lhs} = ANY(%s::{field.db_type(connection)}[])", (*lhs_params, values)
        return self.as_sql(compiler, connection)


@Field.register_lookup
class AnyOf(_OneArray, In):
    lookup_name = "any"


@ForeignObject.register_lookup
class RelatedAnyOf(_OneArray, RelatedIn):
    """`fk__any`: related fields take only the lookups registered on ForeignObject."""

    lookup_name = "any"
