"""The pools of a zone as the placement rules see them (``PoolFacts``), read with plain queries.

Two ways to read them:

- ``zone_pools``: every pool of the zone (optionally without the local ones). Exact and
  complete; a zone of thousands of pools costs a few milliseconds per thousand.
- ``candidate_pools``: for a VM whose shared volumes may have to move, only the shared pools
  that can win. A volume goes to the Up pool with the most room that carries its storage tags
  (``placement.choose_pool``); placing ``k`` volumes changes the room of at most ``k - 1`` pools
  before the last one is placed, so for each cluster the ``k`` roomiest eligible pools (with every
  pool tied with the ``k``-th) always contain the winner, and if none of them has room, no other
  pool of the cluster has. The query ranks the Up pools of each cluster and tag string by room
  and keeps the ``k`` first of each: the roomiest pools eligible for a need are among them,
  whatever tags the need asks for. Zone-wide pools come whole. When a volume finds no place, the
  caller reads the whole zone instead (``zone_pools``), so a refusal lists exactly the pools it
  would list anyway.

Tags are matched in Python, with the same ``placement.split_tags`` the rules use, so SQL never
has to parse a tag list. The statements are built once per shape and cached.
"""
from __future__ import annotations

from functools import lru_cache

from sqlalchemy import BigInteger, Float, Integer, bindparam, cast, func, select, union_all
from sqlalchemy.orm import Session

from .models import StoragePool
from .placement import PoolFacts

P = StoragePool
# The columns of PoolFacts, in order. allocated_bytes is kept by triggers on volumes (migration 0008).
_COLUMNS = (P.name, P.is_local, P.scope, P.state, P.zone_id, P.cluster_id, P.host_id, P.tags, P.capacity_bytes,
            P.allocated_bytes, P.id)


def _rows(session: Session, query, params: dict | None = None) -> dict[int, PoolFacts]:
    make = PoolFacts._make
    # .all(): one fetchall; iterating a result fetches row by row, several times slower.
    return {r[10]: make(r) for r in session.connection().execute(query, params or {}).all()}


def zone_pools(session: Session, zone_id: int, include_local: bool = True) -> dict[int, PoolFacts]:
    """Every pool of the zone; local pools only with ``include_local``."""
    query = select(*_COLUMNS).where(P.zone_id == zone_id)
    if not include_local:
        query = query.where(P.is_local.is_(False))
    return _rows(session, query)


def pools_by_id(session: Session, zone_id: int, pool_ids: set[int]) -> dict[int, PoolFacts]:
    """These pools, if they are in the zone."""
    if not pool_ids:
        return {}
    return _rows(session, select(*_COLUMNS).where(P.id.in_(pool_ids), P.zone_id == zone_id))


def _room(dialect: str, overprovisioning):
    """``int(capacity x factor) - allocated`` in SQL, exactly as ``placement.free_bytes`` has it."""
    scaled = P.capacity_bytes * overprovisioning
    whole = (cast(func.floor(scaled), BigInteger) if dialect == "postgresql"
             else cast(scaled, Integer))  # SQLite: CAST truncates, as int() does (capacity >= 0)
    return whole - P.allocated_bytes


@lru_cache(maxsize=64)
def _candidates_query(dialect: str, include_local: bool, with_ids: bool, ranked: bool):
    """The statement of ``candidate_pools`` for one shape, built once (building it costs more
    than running it); the values are bound parameters."""
    zone_id = bindparam("zone_id", type_=Integer)
    # By scope, which ix_storage_pools_zone_scope finds directly (local pools are HOST-scoped).
    branches = [select(*_COLUMNS).where(P.zone_id == zone_id, P.scope == "ZONE")]
    if include_local:
        branches.append(select(*_COLUMNS).where(P.zone_id == zone_id, P.scope == "HOST"))
    if with_ids:
        branches.append(select(*_COLUMNS).where(P.zone_id == zone_id,
                                                P.id.in_(bindparam("pool_ids", expanding=True))))
    if ranked:
        rank = func.rank().over(partition_by=(P.cluster_id, P.tags),
                                order_by=_room(dialect, bindparam("factor", type_=Float)).desc())
        inner = (select(*_COLUMNS, rank.label("rank"))
                 .where(P.zone_id == zone_id, P.scope == "CLUSTER", P.state == "Up").subquery())
        branches.append(select(*[c for c in inner.c if c.name != "rank"])
                        .where(inner.c.rank <= bindparam("k", type_=Integer)))
    return union_all(*branches)


def candidate_pools(session: Session, zone_id: int, needs: list[str | None], overprovisioning: float,
                    include_local: bool, pool_ids: set[int]) -> dict[int, PoolFacts]:
    """In one query: the shared pools of the zone that can win
    a place for ``len(needs)`` volumes with these storage tag ``needs``, every zone-wide pool,
    every local pool with ``include_local``, and the pools ``pool_ids``.

    The shared ones: for each cluster and each tag string its pools carry, the ``len(needs)``
    roomiest Up pools with that string, ties included. The roomiest pools eligible for a need
    are pools of the strings that satisfy it, and each is among the roomiest of its own string,
    so every winner is read without knowing the zone's tag strings first.
    """
    dialect = session.get_bind().dialect.name
    query = _candidates_query(dialect, include_local, bool(pool_ids), bool(needs))
    params = {"zone_id": zone_id}
    if pool_ids:
        params["pool_ids"] = sorted(pool_ids)
    if needs:
        params.update(factor=float(overprovisioning), k=len(needs))
    return _rows(session, query, params)
