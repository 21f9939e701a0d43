"""The pools of a zone as the placement rules see them (``PoolFacts``), read with plain queries.

Two ways to read them:

- ``zone_pools``: every pool of the zone (optionally without the local ones) with the bytes
  allocated on each. Exact and complete; a zone of thousands of pools costs a few milliseconds
  per thousand.
- ``candidate_pools``: for a VM whose shared volumes may have to move, only the shared pools
  that can win. A volume goes to the Up pool with the most room that carries its storage tags
  (``placement.choose_pool``); placing ``k`` volumes changes the room of at most ``k - 1`` pools
  before the last one is placed, so for each cluster the ``k`` roomiest eligible pools (with every
  pool tied with the ``k``-th) always contain the winner, and if none of them has room, no other
  pool of the cluster has. The query ranks each cluster's pools by room once per distinct set of
  tags the VM's volumes need. Zone-wide pools come whole. When a volume finds no place, the
  caller reads the whole zone instead (``zone_pools``), so a refusal lists exactly the pools it
  would list anyway.

Tags are matched in Python on the zone's few distinct tag strings, with the same
``placement.split_tags`` the rules use, so SQL never has to parse a tag list.
"""
from __future__ import annotations

from sqlalchemy import BigInteger, Integer, cast, func, literal, select, union_all
from sqlalchemy.orm import Session

from . import placement
from .models import StoragePool, Volume
from .placement import PoolFacts

P = StoragePool
# The columns of PoolFacts, in order (allocated comes from the caller's join).
_FIRST = (P.name, P.is_local, P.scope, P.state, P.zone_id, P.cluster_id, P.host_id, P.tags, P.capacity_bytes)


def _allocated(zone_id: int):
    """Bytes of volumes on each pool of the zone (index-only scan of ix_volumes_zone_pool_size)."""
    return (select(Volume.pool_id, cast(func.sum(Volume.size), BigInteger).label("allocated"))
            .where(Volume.zone_id == zone_id).group_by(Volume.pool_id))


def _rows(session: Session, query) -> dict[int, PoolFacts]:
    make = PoolFacts._make
    # .all(): one fetchall; iterating a result fetches row by row, several times slower.
    return {r[10]: make(r) for r in session.connection().execute(query).all()}


def zone_pools(session: Session, zone_id: int, include_local: bool = True) -> dict[int, PoolFacts]:
    """Every pool of the zone with the bytes allocated on it; local pools only with ``include_local``."""
    allocated = _allocated(zone_id).subquery()
    query = (select(*_FIRST, func.coalesce(allocated.c.allocated, 0), P.id)
             .outerjoin(allocated, allocated.c.pool_id == P.id).where(P.zone_id == zone_id))
    if not include_local:
        query = query.where(P.is_local.is_(False))
    return _rows(session, query)


def pools_by_id(session: Session, zone_id: int, pool_ids: set[int]) -> dict[int, PoolFacts]:
    """These pools, if they are in the zone, with their allocations."""
    if not pool_ids:
        return {}
    allocated = (select(Volume.pool_id, cast(func.sum(Volume.size), BigInteger).label("allocated"))
                 .where(Volume.pool_id.in_(pool_ids)).group_by(Volume.pool_id).subquery())
    return _rows(session, select(*_FIRST, func.coalesce(allocated.c.allocated, 0), P.id)
                 .outerjoin(allocated, allocated.c.pool_id == P.id)
                 .where(P.id.in_(pool_ids), P.zone_id == zone_id))


def _room(session: Session, overprovisioning: float, allocated):
    """``int(capacity x factor) - allocated`` in SQL, exactly as ``placement.free_bytes`` has it."""
    scaled = P.capacity_bytes * literal(float(overprovisioning))
    whole = (cast(func.floor(scaled), BigInteger) if session.get_bind().dialect.name == "postgresql"
             else cast(scaled, Integer))  # SQLite: CAST truncates, as int() does (capacity >= 0)
    return whole - func.coalesce(allocated.c.allocated, 0)


def candidate_pools(session: Session, zone_id: int, needs: list[str | None], overprovisioning: float,
                    include_local: bool, pool_ids: set[int]) -> dict[int, PoolFacts]:
    """In one query (one pass over the zone's volumes): the shared pools of the zone that can win
    a place for volumes with these storage tag ``needs`` (one entry per volume to place) - per
    cluster the ``len(needs)`` roomiest Up pools eligible for each distinct need, ties included -,
    every zone-wide pool, every local pool with ``include_local``, and the pools ``pool_ids``."""
    allocated = _allocated(zone_id).cte("allocated")
    used = func.coalesce(allocated.c.allocated, 0)

    def plain(*where):
        return select(*_FIRST, used, P.id).outerjoin(allocated, allocated.c.pool_id == P.id).where(*where)

    # By scope, which ix_storage_pools_zone_scope finds directly (local pools are HOST-scoped).
    branches = [plain(P.zone_id == zone_id, P.scope == "ZONE")]
    if include_local:
        branches.append(plain(P.zone_id == zone_id, P.scope == "HOST"))
    if pool_ids:
        branches.append(plain(P.zone_id == zone_id, P.id.in_(pool_ids)))
    if needs:
        strings = session.scalars(select(P.tags).distinct().where(
            P.zone_id == zone_id, P.scope == "CLUSTER", P.state == "Up")).all()
        for need in {placement.split_tags(n) for n in needs}:
            matching = [s for s in strings if need <= placement.split_tags(s)]
            if not matching:
                continue
            rank = func.rank().over(partition_by=P.cluster_id,
                                    order_by=_room(session, overprovisioning, allocated).desc())
            ranked = (select(*_FIRST, used.label("allocated_bytes"), P.id.label("pool_id"), rank.label("rank"))
                      .outerjoin(allocated, allocated.c.pool_id == P.id)
                      .where(P.zone_id == zone_id, P.scope == "CLUSTER", P.state == "Up", P.tags.in_(matching))
                      .subquery())
            branches.append(select(*[c for c in ranked.c if c.name != "rank"]).where(ranked.c.rank <= len(needs)))
    return _rows(session, union_all(*branches))
