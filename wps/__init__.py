"""WPS 1.0.0 and 2.0.0 at /wps over the same processes and the same job store (see http.py)."""
