"""Analytics as OGC API processes, the Celery-backed job manager and its HTTP routes."""
