"""One exception type carrying HTTP status and OGC exception type; one place renders it.

OGC API routes answer problem+json (RFC 7807, as OGC API - Processes requires);
WPS answers an OWS ExceptionReport (see wps/).
"""
from __future__ import annotations

import json
import logging

from flask import Response, request
from werkzeug.datastructures import Headers
from werkzeug.exceptions import HTTPException

LOGGER = logging.getLogger(__name__)

OGCAPI_PROCESSES = 'http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/'
NO_SUCH_PROCESS = OGCAPI_PROCESSES + 'no-such-process'
NO_SUCH_JOB = OGCAPI_PROCESSES + 'no-such-job'
RESULT_NOT_READY = OGCAPI_PROCESSES + 'result-not-ready'
INVALID_PARAMETER = OGCAPI_PROCESSES + 'invalid-parameter'  # OGC API Common style
FAILED_JOB = OGCAPI_PROCESSES + 'failed'
NOT_ALLOWED = 'http://www.opengis.net/def/exceptions/ogcapi-processes-4/1.0/locked'
FORBIDDEN = 'http://www.opengis.net/def/exceptions/ogcapi-common-1/1.0/forbidden'
UNAUTHORIZED = 'http://www.opengis.net/def/exceptions/ogcapi-common-1/1.0/unauthorized'
NOT_FOUND = 'http://www.opengis.net/def/exceptions/ogcapi-common-1/1.0/not-found'
BAD_REQUEST = 'http://www.opengis.net/def/exceptions/ogcapi-common-1/1.0/invalid-parameter-value'
TOO_LARGE = 'http://www.opengis.net/def/exceptions/ogcapi-common-1/1.0/payload-too-large'
SERVER_ERROR = 'http://www.opengis.net/def/exceptions/ogcapi-common-1/1.0/server-error'


class APIError(Exception):
    """Raise anywhere in a request: becomes problem+json with this status and type."""

    def __init__(self, status: int, type_: str, detail: str, title: str | None = None,
                 headers: dict | None = None):
        super().__init__(detail)
        self.status = status
        self.type = type_
        self.detail = detail
        self.title = title or type_.rsplit('/', 1)[-1].replace('-', ' ').capitalize()
        self.headers = headers or {}

    def to_dict(self) -> dict:
        return {'type': self.type, 'title': self.title, 'status': self.status,
                'detail': self.detail}


def problem_response(err: APIError) -> Response:
    resp = Response(json.dumps(err.to_dict()), status=err.status,
                    mimetype='application/problem+json')
    for k, v in err.headers.items():
        resp.headers[k] = v
    return resp


def install_error_handlers(app) -> None:
    """Every error of the app becomes problem+json; no traceback ever reaches a client."""

    # Parts of the app that speak another error dialect (WPS: OWS ExceptionReport) register
    # {path prefix: render(APIError) -> Response} in app.extensions['vre_error_renderers'].
    renderers = app.extensions.setdefault('vre_error_renderers', {})

    def render(err: APIError) -> Response:
        for prefix, renderer in renderers.items():
            if request.path == prefix or request.path.startswith(prefix + '/'):
                return renderer(err)
        return problem_response(err)

    @app.errorhandler(APIError)
    def _api_error(err: APIError):
        return render(err)

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException):
        types = {404: NOT_FOUND, 413: TOO_LARGE, 401: UNAUTHORIZED, 403: FORBIDDEN}
        return render(APIError(err.code or 500, types.get(err.code, BAD_REQUEST),
                               err.description or err.name, title=err.name))

    @app.after_request
    def _pygeoapi_errors_as_problems(resp: Response):
        """pygeoapi answers errors as {code, description}; OGC API asks for problem+json."""
        if not isinstance(resp.headers, Headers):     # pygeoapi assigns a plain dict
            resp.headers = Headers(list(resp.headers.items()))
        if resp.status_code < 400 or resp.mimetype != 'application/json' or resp.is_streamed:
            return resp
        try:
            body = json.loads(resp.get_data())
        except ValueError:
            return resp
        if not isinstance(body, dict) or 'code' not in body or 'description' not in body:
            return resp
        types = {404: NOT_FOUND, 401: UNAUTHORIZED, 403: FORBIDDEN}
        type_ = types.get(resp.status_code, SERVER_ERROR if resp.status_code >= 500 else BAD_REQUEST)
        problem = {'type': type_, 'title': str(body['code']), 'status': resp.status_code,
                   'detail': str(body['description']), 'code': body['code']}
        resp.set_data(json.dumps(problem))
        resp.mimetype = 'application/problem+json'
        return resp

    @app.errorhandler(Exception)
    def _unexpected(err: Exception):
        LOGGER.exception('unhandled error')
        return problem_response(APIError(500, SERVER_ERROR,
                                         'internal error; the server log has the details'))
