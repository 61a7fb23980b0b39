"""Input fields that take JSON types as the schema states them, without DRF's coercion.

DRF turns `0` into `"0"` for a CharField and takes `0`, `"yes"` or `0.0` for a BooleanField; the
OpenAPI schema says string and boolean, so the API refuses anything else with a 400 naming the
field (found by the schemathesis fuzz test's negative cases).
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers


class StrictCharField(serializers.CharField):
    """A string that arrives as a JSON string."""

    default_error_messages = {"not_string": "Must be a string."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("not_string")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """`true` or `false`, nothing that merely looks like one."""

    default_error_messages = {"not_boolean": "Must be true or false."}

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("not_boolean")
        return data
