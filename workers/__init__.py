"""Celery side: the app factory, thin tasks, the beat schedule and the host-agent HTTP client."""
