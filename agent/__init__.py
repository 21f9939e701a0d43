"""The host agent: one HTTP service per hypervisor machine that runs storage-migration commands.

It stands in for CloudStack's Hyper-V agent (the service that receives serialized commands such
as ``MigrateVolumeCommand`` from the management server). One agent process may serve several
simulated hypervisor hosts, each with its own command store, volume/pool registries, fault book
and storage-migration limit. The wire contract is written down in ``docs/agent-protocol.md``;
nothing else in the project imports this package (the contract is tested, not imported).

Modules: ``server`` (Flask routes), ``serve`` (threaded HTTP server wrapper), ``main`` (CLI),
``host`` (one host's state and command lifecycle), ``runner`` (per-host FIFO queue and worker
threads), ``commands`` (the command store), ``registry`` (volumes and pools), ``validation``
(request bodies), ``persist`` (atomic JSON files), ``errors``, and ``backends.simulated`` /
``backends.faults`` (the simulated Hyper-V backend and its test hooks).
"""
