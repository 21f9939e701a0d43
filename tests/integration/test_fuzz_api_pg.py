"""Fuzzing the API on PostgreSQL: over 10,000 generated requests to every registered command.

Each generated request is sent three times: twice with credentials that let it in (a root
admin's, a domain admin's or a user's signed key, or a user's session with its session key) and
once without (unsigned, signed with the wrong secret, expired, a disabled user's key, a session cookie
without its key). Names and values mix the usual parameter names and real ids with SQL fragments,
path traversal, huge strings, control characters and bytes that are not UTF-8.

For every response: no 5xx (CloudStack's own 531-537 answers aside), JSON, and every error in
the CloudStack envelope with ``errorcode`` equal to the HTTP status. For every refused request:
the database is exactly as before (a digest of every table). Requests without valid
credentials are never answered with data. At the end no injection text is stored anywhere, and
only accepted migrations were enqueued. Hypothesis runs derandomized: the same requests every
run. The password work factor is lowered: login refusals, not scrypt, are being fuzzed.
"""
from __future__ import annotations

from collections import Counter
from datetime import timedelta
from urllib.parse import quote_from_bytes

import pytest
from hypothesis import HealthCheck, Phase, given, settings, strategies as st
from sqlalchemy import func, select, text

from api.auth_commands import SELF_AUTHENTICATED
from api.registry import COMMANDS
from api.signing import sign_pairs
from orchestrator import accounts, models, passwords
from tests.integration.test_security_auth_pg import expires_in, make_env, snapshot

pytestmark = pytest.mark.postgres

EXAMPLES = 3_400  # three requests each
CALLER_ERRORS = {531, 532, 533, 534, 535, 536, 537}
NAMES = ["id", "ids", "name", "keyword", "page", "pagesize", "volumeid", "storageid", "virtualmachineid",
         "hostid", "zoneid", "podid", "clusterid", "jobid", "livemigrate", "type", "state", "scope",
         "hypervisor", "startdate", "listall", "username", "password", "domain", "domainid", "value",
         "forced", "account", "migrateto[0].volume", "migrateto[0].pool", "migrateto[1].volume",
         "migrateto[x].pool", "migrateto[0][1].pool", "migrateto]0[.pool", "migrateto[99999999999].pool",
         "details[0].key", "apikey", "signature", "expires", "signatureversion", "response", "command"]
INJECTIONS = ["' OR '1'='1", "1; DROP TABLE volumes; --", "\" OR 1=1 --", "'; DELETE FROM users; --",
              "%' OR 1=1 --", "../../../../etc/passwd", "..\\..\\..\\windows\\win.ini", "/etc/shadow",
              "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "....//....//etc/passwd", "$(reboot)", "`id`",
              "${jndi:ldap://x/a}", "<script>alert(1)</script>", "a\x00b", "\r\nSet-Cookie: x=y",
              "{{7*7}}", "%", "_", "\\", "*", "null", "None", "NaN", "-0", "1e309"]
STORED_MARKERS = ["DROP TABLE", "DELETE FROM", "etc/passwd", "win.ini", "etc/shadow", "jndi:", "<script>",
                  "$(reboot)", "Set-Cookie"]
SCALARS = ["true", "false", "TRUE", "yes", "0", "1", "-1", "", " ", "0x10", "1_000", "١٢", "2147483648",
           "-2147483649", "99999999999999999999999", "2026-11-25T19:00:00+0000", "9999-12-31T23:59:59-2359",
           "ROOT", "/", "Hyperv", "Running", "Migrating", "CLUSTER", "ZONE", "wait", "500", "501"]


def valid_ids(db) -> list[str]:
    with db.uow() as uow:
        return [u for model in (models.Volume, models.StoragePool, models.Host, models.VirtualMachine,
                                models.Zone, models.Pod, models.Cluster, models.DiskOffering)
                for u in uow.session.scalars(select(model.uuid))]


def weighted(*branches):
    """One of the strategies of ``(weight, strategy)`` pairs, chosen in proportion to weight."""
    strategies = [strategy for _, strategy in branches]
    picks = [index for index, (weight, _) in enumerate(branches) for _ in range(weight)]
    return st.sampled_from(picks).flatmap(lambda index: strategies[index])


def requests(ids: list[str]):
    """A command, a method and up to six (name, value) pairs; values may be raw bytes.

    Mostly plausible requests (known commands, names and real ids), so that many get past the
    early checks and authentication into the commands; garbage in every other branch.
    """
    known = st.sampled_from(sorted(COMMANDS))
    command = weighted((12, known), (1, st.sampled_from(["", "LISTZONES", "listzones", "dropTables",
                                                         "login ", "../listZones"])),
                       (1, st.text(max_size=20)))
    name = weighted((5, st.sampled_from(NAMES)), (1, st.sampled_from(NAMES).map(str.upper)),
                    (1, st.text(min_size=1, max_size=20)), (1, st.binary(min_size=1, max_size=8)))
    value = weighted(
        (5, st.sampled_from(ids)), (4, st.sampled_from(SCALARS)), (1, st.uuids().map(str)),
        (1, st.integers(min_value=-2 ** 70, max_value=2 ** 70).map(str)), (2, st.sampled_from(INJECTIONS)),
        (1, st.builds(lambda i, j: i + j, st.sampled_from(ids), st.sampled_from(INJECTIONS))),
        (1, st.text(max_size=40)), (1, st.binary(max_size=16)),
        (1, st.sampled_from(["A" * 5_000, "é" * 3_000, "x" * 40_000, "0" * 4_096])))
    return st.tuples(command, st.sampled_from(["get", "post"]), st.lists(st.tuples(name, value), max_size=6))


def as_text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def as_bytes(value) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")


class DatabaseWatch:
    """Whether the database changed since the last look: PostgreSQL's next transaction id first
    (it moves only when some transaction writes), the digest of every table when it moved."""

    def __init__(self, db):
        self.db = db
        self.conn = db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        self.xmax, self.digest = self.next_xid(), snapshot(db)

    def next_xid(self) -> int:
        return self.conn.execute(text("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint")).scalar()

    def changed(self) -> bool:
        xmax = self.next_xid()
        if xmax == self.xmax:
            return False
        digest = snapshot(self.db)
        changed, self.xmax, self.digest = digest != self.digest, xmax, digest
        return changed

    def close(self) -> None:
        self.conn.close()


class Fuzzer:
    def __init__(self, env, session_client, session_key):
        self.env, self.session_client, self.session_key = env, session_client, session_key
        self.disabled_key = env["disabled_key"]
        self.watch = DatabaseWatch(env["db"])
        self.sent = Counter()
        self.statuses = Counter()

    def pairs(self, command, params, mode):
        pairs = [("command", command), ("response", "json")] + list(params)
        if mode in ("session", "session-without-key"):
            return pairs + ([("sessionkey", self.session_key)] if mode == "session" else [])
        if mode == "unsigned":
            return pairs
        key = self.disabled_key if mode == "disabled-key" else self.env["keys"][mode.split("-")[0]]
        expires = expires_in(timedelta(minutes=-10) if mode.endswith("expired") else timedelta(minutes=5))
        pairs += [("apiKey", key["apikey"]), ("signatureVersion", "3"), ("expires", expires)]
        text_pairs = [(as_text(k), as_text(v)) for k, v in pairs]
        secret = "wrong-secret" if mode.endswith("badsig") else key["secretkey"]
        return pairs + [("signature", sign_pairs(text_pairs, secret))]

    def send(self, command, method, params, mode) -> None:
        body = "&".join(f"{quote_from_bytes(as_bytes(k), safe='')}={quote_from_bytes(as_bytes(v), safe='')}"
                        for k, v in self.pairs(command, params, mode))
        client = self.session_client if mode.startswith("session") else self.env["flask"]
        if method == "get":
            response = client.get(f"/client/api?{body}")
        else:
            response = client.post("/client/api", data=body, content_type="application/x-www-form-urlencoded")
        status, payload = response.status_code, response.get_json(silent=True)
        self.sent[command if command in COMMANDS else "(other)"] += 1
        self.statuses[status] += 1
        where = f"{mode} {method} {command!r} {params!r}"[:600]
        assert status < 500 or status in CALLER_ERRORS, f"{status} {payload} for {where}"
        assert isinstance(payload, dict), f"not JSON ({status}) for {where}"
        changed = self.watch.changed()
        if status != 200:
            [(name, error)] = payload.items()
            assert name.endswith("response") and error["errorcode"] == status, f"{payload} for {where}"
            assert isinstance(error["cserrorcode"], int) and error["errortext"], f"{payload} for {where}"
            assert not changed, f"a refused request changed the database: {where}"
        if mode in UNAUTHORISED and command not in SELF_AUTHENTICATED:
            assert status != 200, f"answered without valid credentials: {where}"


AUTHORISED = ["admin", "admin", "domainadmin", "user", "session"]
UNAUTHORISED = ["unsigned", "admin-badsig", "admin-expired", "disabled-key", "session-without-key"]


def test_ten_thousand_generated_requests_break_nothing_and_refusals_change_nothing(pg_url, monkeypatch):
    monkeypatch.setattr(passwords, "COST_N", 2 ** 4)
    env = make_env(pg_url, pool_pre_ping=False)  # one round trip less per request
    try:
        with env["db"].uow() as uow:
            accounts.create_user(uow.session, "fuzz", "fuzz-password", "user")
            disabled = accounts.create_key(uow.session, "user", "gone")
            accounts.set_state(uow.session, "disabled", account_name="gone")
            uow.commit()
        env["disabled_key"] = disabled
        session_client = env["app"].test_client()
        login = session_client.post("/client/api", data={"command": "login", "username": "fuzz",
                                                         "password": "fuzz-password", "response": "json"})
        fuzzer = Fuzzer(env, session_client, login.get_json()["loginresponse"]["sessionkey"])
        ids = valid_ids(env["db"])

        @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                  phases=(Phase.explicit, Phase.generate, Phase.shrink),
                  suppress_health_check=list(HealthCheck))
        @given(request=requests(ids), modes=st.tuples(st.sampled_from(AUTHORISED), st.sampled_from(AUTHORISED),
                                                      st.sampled_from(UNAUTHORISED)))
        def one(request, modes):
            command, method, params = request
            for mode in modes:
                if mode == "session" and command == "logout":  # keep the fuzzing session open
                    mode = "admin"
                fuzzer.send(command, method, params, mode)

        one()
        assert sum(fuzzer.sent.values()) >= 10_000
        assert min(fuzzer.sent[name] for name in COMMANDS) >= 20, fuzzer.sent  # every command, often
        assert_no_injection_stored(env["db"])
        with env["db"].uow() as uow:
            jobs = uow.session.scalar(select(func.count()).select_from(models.AsyncJob))
        assert len(env["enqueued"]) == jobs
    finally:
        if "fuzzer" in locals():
            fuzzer.watch.close()
        env["db"].dispose()


def assert_no_injection_stored(db) -> None:
    """No table holds any of the injection markers, in any column."""
    with db.engine.connect() as conn:
        tables = [r[0] for r in conn.execute(text(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
            "AND table_type = 'BASE TABLE'"))]
        for table in tables:
            dump = "\n".join(r[0] for r in conn.execute(text(f"SELECT t::text FROM {table} t")))
            found = [marker for marker in STORED_MARKERS if marker in dump]
            assert found == [], f"{table} holds {found}"
