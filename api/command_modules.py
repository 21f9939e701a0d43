"""Importing this module registers every command handler in ``registry.COMMANDS``."""
from . import inventory_commands, job_commands, placement_commands, vm_commands  # noqa: F401
