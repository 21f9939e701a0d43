"""Operational endpoints beside the API (metrics, health); see issue 10."""
from __future__ import annotations


def register(app, db, settings) -> None:
    return None
