"""The one WSGI app: pygeoapi's OGC API, our OGC API - Processes routes, pywps at /wps,
storage and discovery routes, WebDAV at /dav.

pygeoapi builds its Flask app at import time from PYGEOAPI_CONFIG/PYGEOAPI_OPENAPI, so
`create_app` prepares those first and then takes that app as the base.
"""
from __future__ import annotations

import importlib
import logging

from vre.auth import UserDirectory, ensure_users_file, install_auth
from vre.config import prepare
from vre.errors import install_error_handlers
from vre.settings import Settings, load_settings

LOGGER = logging.getLogger(__name__)

# Route modules of the other packages; each has `register(app, api, settings)`.
ROUTE_MODULES = ['processes.api', 'processes.job_management', 'wps.http', 'storage.http',
                 'providers.http', 'processes.orders']


def create_app(settings: Settings | None = None):
    settings = settings or load_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    ensure_users_file(settings.users_file)
    if not (settings.home / 'openapi.yml').exists():
        prepare(settings)
    else:
        from vre.config import load_config
        load_config(settings)  # exports PYGEOAPI_* for the import below

    import pygeoapi.flask_app as pygeoapi_flask  # builds pygeoapi's app from the env

    app = pygeoapi_flask.APP
    app.config['MAX_CONTENT_LENGTH'] = settings.max_body_bytes
    app.extensions['vre_settings'] = settings
    app.extensions['pygeoapi_api'] = pygeoapi_flask.api_
    install_error_handlers(app)
    install_auth(app, UserDirectory(settings.users_file))
    for name in ROUTE_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name != name:
                raise
            continue
        module.register(app, pygeoapi_flask.api_, settings)
    return app
