"""The ``motion`` command: the embedded system, the demo, and the production entry points."""
