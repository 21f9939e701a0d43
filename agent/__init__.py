"""The host agent: one HTTP service per hypervisor machine that runs storage-migration commands.

It stands in for CloudStack's Hyper-V agent (the service that receives serialized commands such
as ``MigrateVolumeCommand`` and ``MigrateWithStorageCommand`` from the management server). One
agent process may serve several simulated hypervisor hosts, each with its own command store,
volume/pool/VM registries, guests, write log and fault book; their storage-migration slots are
one table per process. The wire contract is written down in ``docs/agent-protocol.md``; nothing
else in the project imports this package (the contract is tested, not imported).

Modules: ``server`` (Flask routes), ``serve`` (threaded HTTP server wrapper), ``main`` (CLI),
``host`` (one host's state and command lifecycle), ``storage`` (volume files, pools, truth),
``slots`` (the per-host limit and FIFO queue), ``jobs`` (MigrateVolumeCommand),
``vm_migration`` (MigrateWithStorageCommand), ``commands`` (the command store), ``registry``
(volumes and pools), ``vms`` (running VMs), ``validation`` / ``command_bodies`` (request
bodies), ``persist`` (atomic JSON files), ``errors``, and ``backends.simulated`` /
``backends.copying`` / ``backends.guest`` / ``backends.faults`` (the simulated Hyper-V backend:
files, the mirroring copy, the writing guests, and the injected faults).
"""
