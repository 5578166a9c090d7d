"""WSGI entry point for gunicorn: `gunicorn vre.wsgi:app` (settings from the environment)."""
from vre.app import create_app

app = create_app()
