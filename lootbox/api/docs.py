"""``/docs``: Swagger UI for ``/openapi.json``, served entirely by this app (no CDN).

flask-smorest already renders a Swagger UI page (``OPENAPI_SWAGGER_UI_PATH``) that loads
its JavaScript and CSS from ``OPENAPI_SWAGGER_UI_URL``, normally a CDN. Pointing that URL
at a static route over the files of the pinned ``swagger-ui-bundle`` package is the whole
of it: no template of ours to keep in step with Swagger UI, and the page works on a
machine with no internet. ``validatorUrl: null`` stops Swagger UI from sending the spec to
its public online validator (its default).
"""

from __future__ import annotations

from flask import Blueprint, Flask
from swagger_ui_bundle import swagger_ui_path

DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/assets"

SWAGGER_UI_CONFIG = {
    "validatorUrl": None,
    "deepLinking": True,
    "displayRequestDuration": True,
    "defaultModelsExpandDepth": 0,
}

assets = Blueprint(
    "docs_assets",
    __name__,
    static_folder=str(swagger_ui_path),
    static_url_path=ASSETS_PATH,
)


def init_app(app: Flask) -> None:
    """Configure flask-smorest's Swagger UI page; call before ``Api(app)`` reads it."""
    app.config.update(
        OPENAPI_SWAGGER_UI_PATH=DOCS_PATH,
        OPENAPI_SWAGGER_UI_URL=f"{ASSETS_PATH}/",
        OPENAPI_SWAGGER_UI_CONFIG=SWAGGER_UI_CONFIG,
    )
    app.register_blueprint(assets)
