"""Storage-migration slots: at most N migrations run at once per host; the rest wait in FIFO order.

Hyper-V runs at most ``MaximumStorageMigrations`` storage migrations per host at once and queues
the rest in arrival order; ``SlotTable`` is that queue for every host one agent process serves.
A ticket asks for one slot on each of a set of hosts (a ``MigrateVolumeCommand`` needs its own
host; a ``MigrateWithStorageCommand`` also needs its destination host when this process serves
it). A ticket is admitted all at once, when every host it needs has a free slot and no older
ticket is waiting for any of those hosts; nothing is ever held while waiting, and all queues
follow one arrival order, so two hosts migrating to each other cannot deadlock. Admission calls
the ticket's ``start(ticket)`` (outside the lock); the holder calls ``release`` when done.
"""
from __future__ import annotations

import itertools
import threading
from collections.abc import Callable


class Ticket:
    """A request for one slot on each of ``hosts``, made by ``owner``."""

    def __init__(self, seq: int, owner: str, hosts: tuple[str, ...], start: Callable[["Ticket"], None]):
        self.seq, self.owner, self.hosts, self.start = seq, owner, hosts, start
        self.admitted = False
        self.released = False


class SlotTable:
    """The slots and the waiting tickets of every host of one agent process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._limits: dict[str, int] = {}
        self._running: dict[str, int] = {}
        self._peak: dict[str, int] = {}
        self._waiting: list[Ticket] = []
        self._seq = itertools.count(1)

    def add_host(self, name: str, limit: int) -> None:
        if limit < 1:
            raise ValueError("a host's storage-migration limit must be at least 1")
        with self._lock:
            self._limits[name] = limit
            self._running.setdefault(name, 0)
            self._peak.setdefault(name, 0)

    def serves(self, name: str) -> bool:
        with self._lock:
            return name in self._limits

    def running(self, name: str) -> int:
        with self._lock:
            return self._running.get(name, 0)

    def peak(self, name: str) -> int:
        """The most migrations ever holding a slot of this host at once."""
        with self._lock:
            return self._peak.get(name, 0)

    def enqueue(self, owner: str, hosts: tuple[str, ...], start: Callable[[Ticket], None]) -> Ticket:
        """Queue a ticket behind every older one; ``start(ticket)`` runs once it is admitted
        (possibly before this call returns)."""
        with self._lock:
            unknown = [h for h in hosts if h not in self._limits]
            if unknown:
                raise ValueError(f"no slots for hosts {unknown}")
            ticket = Ticket(next(self._seq), owner, tuple(dict.fromkeys(hosts)), start)
            self._waiting.append(ticket)
            admitted = self._admit_locked()
        self._start(admitted)
        return ticket

    def cancel(self, ticket: Ticket) -> bool:
        """Withdraw a waiting ticket; ``False`` if it was already admitted."""
        with self._lock:
            if ticket.admitted or ticket not in self._waiting:
                return False
            self._waiting.remove(ticket)
            admitted = self._admit_locked()  # it may have held younger tickets back
        self._start(admitted)
        return True

    def cancel_owned_by(self, owner: str) -> int:
        """Withdraw every waiting ticket of ``owner`` (a host agent closing)."""
        with self._lock:
            mine = [t for t in self._waiting if t.owner == owner]
            self._waiting = [t for t in self._waiting if t.owner != owner]
            admitted = self._admit_locked()
        self._start(admitted)
        return len(mine)

    def release(self, ticket: Ticket) -> None:
        """Give back the slots of an admitted ticket (idempotent) and admit whoever fits now."""
        with self._lock:
            if not ticket.admitted or ticket.released:
                return
            ticket.released = True
            for host in ticket.hosts:
                self._running[host] -= 1
            admitted = self._admit_locked()
        self._start(admitted)

    def _admit_locked(self) -> list[Ticket]:
        admitted, blocked = [], set()
        for ticket in list(self._waiting):
            hosts = set(ticket.hosts)
            if not hosts & blocked and all(self._running[h] < self._limits[h] for h in hosts):
                self._waiting.remove(ticket)
                ticket.admitted = True
                for host in hosts:
                    self._running[host] += 1
                    self._peak[host] = max(self._peak[host], self._running[host])
                admitted.append(ticket)
            else:
                blocked |= hosts  # strict FIFO per host: younger tickets wait behind this one
        return admitted

    @staticmethod
    def _start(tickets: list[Ticket]) -> None:
        for ticket in tickets:
            ticket.start(ticket)
