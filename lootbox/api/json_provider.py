"""The app's JSON: Flask's defaults, except that a ``Decimal`` is a JSON number written with
exactly its digits.

Flask writes a ``Decimal`` as a string, and the standard library cannot write one as a
number without going through a binary float (``0.05`` would still read ``0.05``, but
``0.1234567890123456789`` would not). The catalog's odds must reach callers as numbers with
exactly the digits the catalog holds (contract section 5), so answers are written by
simplejson, whose ``use_decimal`` does that; everything else comes out as before.
"""

from __future__ import annotations

from typing import Any

import simplejson
from flask.json.provider import DefaultJSONProvider


class ExactDecimalJSONProvider(DefaultJSONProvider):
    def dumps(self, obj: Any, **kwargs: Any) -> str:
        kwargs.setdefault("default", self.default)
        kwargs.setdefault("ensure_ascii", self.ensure_ascii)
        kwargs.setdefault("sort_keys", self.sort_keys)
        return str(simplejson.dumps(obj, use_decimal=True, **kwargs))
