"""Importing this module registers every command handler in ``registry.COMMANDS``."""
from . import admin_commands, auth_commands, inventory_commands, job_commands, placement_commands, vm_commands  # noqa: F401
