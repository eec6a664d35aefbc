"""Shared schema fields: what they refuse, and how much work they do first."""

from __future__ import annotations

from typing import Any

import pytest
from marshmallow import ValidationError, fields

from schemas.fields import BoundedList


class CountingInteger(fields.Integer):
    loaded = 0

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        type(self).loaded += 1
        return super()._deserialize(value, attr, data, **kwargs)


def test_a_list_over_its_bound_is_refused_before_any_item_is_loaded() -> None:
    CountingInteger.loaded = 0
    field = BoundedList(CountingInteger(), max_items=10)

    with pytest.raises(ValidationError, match="between 1 and 10"):
        field.deserialize(list(range(300_000)))

    assert CountingInteger.loaded == 0


def test_a_list_within_its_bound_loads_every_item() -> None:
    CountingInteger.loaded = 0
    assert BoundedList(CountingInteger(), max_items=10).deserialize(["1", 2]) == [1, 2]
    assert CountingInteger.loaded == 2


def test_an_empty_list_is_refused_as_before() -> None:
    with pytest.raises(ValidationError, match="between 1 and 10"):
        BoundedList(fields.Integer(), max_items=10).deserialize([])
