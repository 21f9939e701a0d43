"""Hypervisor backends of the host agent. Only ``simulated`` exists: pools are directories on the
agent's data root and a storage migration really copies a volume file between them.
"""
