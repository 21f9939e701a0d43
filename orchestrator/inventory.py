"""The inventory file: the cloud (zones, pods, clusters, hosts, pools, offerings, accounts, VMs and
their volumes) as YAML, checked completely before anything is written, loaded in bulk, and dumped
back in the same format.

``parse`` turns text into a dict, ``validate`` checks a dict and raises ``InventoryError`` naming
the offending entry (``vms[2] (web-3).volumes[0].pool: no pool named 'a-silver'``), ``load``
inserts a valid inventory through a caller's session without committing, ``load_file`` does all
three in one unit of work, ``dump`` reads the database back and ``generate`` builds synthetic
inventories of any size. The format is documented field by field in ``docs/inventory.md``.

This module is the public face only; the work is done in small modules it re-exports from:
``inventory_format`` (keys, choices, sizes), ``inventory_yaml`` (text), ``inventory_fields`` and
``inventory_check`` (validation into a plan), ``inventory_load``, ``inventory_dump`` and
``inventory_generate``. Import from here.
"""
from __future__ import annotations

from .inventory_check import _check, validate  # _check (the plan) for the unit tests
from .inventory_dump import dump
from .inventory_format import ADMIN_ACCOUNT, format_size, parse_size
from .inventory_generate import generate
from .inventory_load import load, load_file
from .inventory_yaml import parse, to_yaml

__all__ = ["parse", "validate", "load", "load_file", "dump", "generate", "to_yaml",
           "parse_size", "format_size", "ADMIN_ACCOUNT"]
