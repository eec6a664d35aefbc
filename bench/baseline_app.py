"""The baseline: a bare Flask JSON endpoint, served by the same gunicorn configuration.

``gunicorn --config config/gunicorn.py bench.baseline_app:app`` answers the benchmark's
signed cashout request (same path, headers and body) by parsing the JSON body and
answering a small JSON document: no authentication, no database, no Redis, no wallet.
What this reaches on the machine is the ceiling of Flask under this gunicorn
configuration; every other row of the benchmark is shown as a share of it.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.post("/api/s2s/<path:endpoint>")
def echo(endpoint: str) -> Any:
    document = request.get_json(silent=True) or {}
    return jsonify({"endpoint": endpoint, "fields": len(document), "status": "ok"})


@app.get("/healthz")
def healthz() -> Any:
    return jsonify({"status": "ok"})
