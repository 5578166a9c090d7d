"""WPS exceptions: one exception type carrying the OWS code, locator and HTTP status, and
one renderer that turns it into an OWS ExceptionReport (OWS 1.1 for WPS 1.0.0, OWS 2.0 for
WPS 2.0.0), so no WPS client ever sees problem+json or a traceback.

Client mistakes answer 4xx: 400 for bad, missing or unsupported parameters and
operations (OperationNotSupported included: asking for an operation we lack is the
caller's mistake, not our fault), 404 for a process or job that does not exist or is not
the caller's. 500 (NoApplicableCode) is kept for real server faults.
"""
from __future__ import annotations

from flask import Response
from lxml import etree

OWS11 = 'http://www.opengis.net/ows/1.1'
OWS20 = 'http://www.opengis.net/ows/2.0'

STATUS = {'MissingParameterValue': 400, 'InvalidParameterValue': 400,
          'OperationNotSupported': 400, 'VersionNegotiationFailed': 400,
          'OptionNotSupported': 400, 'FileSizeExceeded': 413, 'NoSuchProcess': 404,
          'NoSuchJob': 404, 'ResultNotReady': 404, 'NoApplicableCode': 500}


class WPSError(Exception):
    """Raise anywhere in a WPS request; becomes an ExceptionReport with its HTTP status."""

    def __init__(self, code: str, text: str, locator: str | None = None,
                 status: int | None = None):
        super().__init__(text)
        self.code, self.text, self.locator = code, text, locator
        self.status = status or STATUS.get(code, 400)


def missing(name: str, text: str | None = None) -> WPSError:
    return WPSError('MissingParameterValue', text or f'parameter "{name}" is required', name)


def invalid(name: str, text: str) -> WPSError:
    return WPSError('InvalidParameterValue', text, name)


def exception_report(err: WPSError, version: str = '1.0.0') -> Response:
    """The ExceptionReport document of `err` in the OWS version that goes with `version`."""
    return Response(report_xml(err, version), status=err.status,
                    mimetype='application/xml')


def report_element(err: WPSError, version: str = '1.0.0') -> etree._Element:
    ows, ows_version = (OWS20, '2.0.0') if version == '2.0.0' else (OWS11, '1.1.0')
    root = etree.Element(f'{{{ows}}}ExceptionReport', nsmap={'ows': ows},
                         version=ows_version)
    root.set('{http://www.w3.org/XML/1998/namespace}lang', 'en-US')
    exc = etree.SubElement(root, f'{{{ows}}}Exception', exceptionCode=err.code)
    if err.locator:
        exc.set('locator', err.locator)
    etree.SubElement(exc, f'{{{ows}}}ExceptionText').text = err.text
    return root


def report_xml(err: WPSError, version: str = '1.0.0') -> bytes:
    return etree.tostring(report_element(err, version), xml_declaration=True,
                          encoding='UTF-8', pretty_print=True)


def from_api_error(err) -> Response:
    """An app-level error (a bad token, an oversized body) on a WPS path, as an ExceptionReport.
    The WPS version is not known before parsing, so 1.0.0's OWS 1.1 report is used."""
    code = {413: 'FileSizeExceeded', 404: 'NoApplicableCode',
            405: 'OperationNotSupported'}.get(err.status, 'NoApplicableCode')
    resp = exception_report(WPSError(code, err.detail, status=err.status))
    for k, v in err.headers.items():
        resp.headers[k] = v
    return resp
