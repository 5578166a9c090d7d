"""The marine VRE server: one WSGI app over pygeoapi, pywps and our own routes."""
