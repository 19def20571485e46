"""RADIUS benchmark: the real FreeRADIUS on the back office's database against a baseline
FreeRADIUS answering the same subscribers from its `files` module, same client, same run.

  (a) a throwaway tenant (`bench-rad-<random>`) with N subscribers (billing's benchmark builder:
      customers, addresses, subscriptions) and a PPPoE account each, a NAS on a free loopback
      address; two FreeRADIUS processes on free ports: `sql` mode (the product) and `files` mode
      (baseline, a users file with the same credentials and reply);
  (b) authentication load with pyrad's asyncio client, `in_flight` requests outstanding, every
      subscriber several times, against the baseline and then the product (after a warm-up);
  (c) a burst: every subscriber re-authenticates at once (a BRAS reboot), nothing may be lost;
  (d) accounting: a Start for every subscriber (new sessions), then an Interim-Update each;
  (e) removal of the tenant, its NAS directory row, the servers.

The load generator is measured on the same machine (2 cores shared by the client, FreeRADIUS
and PostgreSQL), so the ratio to the baseline is the figure that travels between machines."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import connection
from django_tenants.utils import tenant_context

from compliance.audit import Actor

from .radius.loadgen import LoadResult, run_acct_load, run_auth_load
from .radius.server import BaselineUser, DatabaseParams, FreeRadiusServer

# Accounting comes from a few BRAS at a steady rate, not 200 deep: beyond ~64 outstanding, UDP
# buffers overflow on this box and retransmits stall the client (measured, docs/radius.md).
ACCT_IN_FLIGHT = 64
NAS_SECRET = "bench-nas-secret"  # noqa: S105 - a throwaway NAS of the benchmark tenant


@dataclass
class RadiusBenchResult:
    subscribers: int
    in_flight: int
    baseline: dict
    product: dict
    burst: dict
    accounting: dict
    notes: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        base = self.baseline["per_second"]
        return round(self.product["per_second"] / base, 3) if base else 0.0

    def success_rate(self, figures: dict) -> float:
        return figures["accepted"] / figures["sent"] if figures["sent"] else 0.0

    def as_json_dict(self) -> dict:
        return {
            "bench": "radius",
            "subscribers": self.subscribers,
            "in_flight": self.in_flight,
            "auth_per_s": self.product["per_second"],
            "auth_p50_ms": self.product["p50_ms"],
            "auth_p99_ms": self.product["p99_ms"],
            "auth_success_rate": round(self.success_rate(self.product), 5),
            "baseline_auth_per_s": self.baseline["per_second"],
            "baseline_p99_ms": self.baseline["p99_ms"],
            "ratio": self.ratio,
            "burst_sent": self.burst["sent"],
            "burst_accepted": self.burst["accepted"],
            "burst_lost": self.burst["sent"] - self.burst["accepted"],
            "acct_per_s": self.accounting["per_second"],
            "acct_new_sessions_per_s": self.accounting["starts_per_s"],
            "acct_sent": self.accounting["sent"] + self.accounting["starts_sent"],
            "acct_answered": self.accounting["accepted"] + self.accounting["starts_answered"],
            "acct_sessions_stored": self.accounting["stored_sessions"],
        }


def _free_loopback() -> str:
    """A loopback address no tenant uses as a NAS."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT host(ip) FROM radius.nas_directory")
        taken = {row[0] for row in cursor.fetchall()}
    for host in ipaddress.ip_network("127.0.200.0/24").hosts():
        if str(host) not in taken:
            return str(host)
    raise RuntimeError("no free loopback address in 127.0.200.0/24 for the benchmark NAS")


def build_subscribers(*, schema: str, count: int, actor: Actor, say: Callable[[str], None]) -> list[tuple[str, str]]:
    """N active subscribers with PPPoE accounts (user bench-<id>, password pw-<id>-<schema>)."""
    from billing.bench import build_catalog, build_customers

    catalog = build_catalog(actor)
    build_customers(schema=schema, count=count, catalog=catalog, seed=2026, say=say)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO network_pppoeaccount (subscription_id, username, secret_sealed, simultaneous_use, "
            "over_cap, created_at, updated_at) "
            "SELECT s.id, 'bench-' || s.id, radius.seal('pw-' || s.id || '-' || %s), 1, false, now(), now() "
            "FROM customers_subscription s WHERE s.status = 'active' ORDER BY s.id LIMIT %s",
            [schema, count],
        )
        cursor.execute("SELECT username, subscription_id FROM network_pppoeaccount ORDER BY id")
        return [(user, f"pw-{sub_id}-{schema}") for user, sub_id in cursor.fetchall()]


def _reply_of(username: str) -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT attribute, value FROM radius.authorize_reply(%s, %s)", [connection.schema_name, username]
        )
        return dict(cursor.fetchall())


def bench_radius(
    *, subscribers: int = 1000, in_flight: int = 200, rounds: int = 20, log: Callable[[str], None] | None = None
) -> RadiusBenchResult:
    from network import services as ns

    from .bench_support import throwaway_tenant

    if subscribers < 1 or in_flight < 1 or rounds < 1:
        raise ValueError("subscribers, in_flight and rounds must be at least 1")
    say = log or (lambda _line: None)
    logging.getLogger("network.radius.loadgen").setLevel(logging.WARNING)  # one line per socket otherwise
    servers: list[FreeRadiusServer] = []
    with throwaway_tenant("bench-rad", say=say) as (tenant, actor):
        try:
            schema = tenant.schema_name
            say(f"  {subscribers} subscribers")
            nas_ip = _free_loopback()
            with tenant_context(tenant):
                credentials = build_subscribers(schema=schema, count=subscribers, actor=actor, say=say)
                ns.nas_register(name="bench-bras", ip_address=nas_ip, secret=NAS_SECRET, actor=actor)
                reply = _reply_of(credentials[0][0])
            say(f"  {len(credentials)} PPPoE accounts; NAS {nas_ip}; reply {reply}")
            product = FreeRadiusServer(mode="sql", database=DatabaseParams.from_settings(), name=f"{schema}-sql")
            baseline = FreeRadiusServer(
                mode="files",
                name=f"{schema}-files",
                static_client_secret=NAS_SECRET,
                users=[BaselineUser(u, p, reply=dict(reply.items())) for u, p in credentials],
            )
            for server in (baseline, product):
                servers.append(server.start())
            say(
                f"  FreeRADIUS sql on :{product.auth_port}/{product.acct_port}, files baseline on :{baseline.auth_port}"
            )

            requests = len(credentials) * rounds

            def auth(server: FreeRadiusServer, source: str, count: int, flight: int) -> LoadResult:
                return asyncio.run(
                    run_auth_load(
                        server="127.0.0.1",
                        port=server.auth_port,
                        secret=NAS_SECRET.encode(),
                        credentials=credentials,
                        in_flight=flight,
                        source_ip=source,
                        nas_ip=source,
                        timeout=2.0,
                        retries=1,
                        requests=count,
                    )
                )

            say(f"(b) authentication: {requests} requests, {in_flight} in flight")
            auth(product, nas_ip, min(requests, 2000), in_flight)  # warm-up: connections, caches
            auth(baseline, "127.0.0.1", min(requests, 2000), in_flight)
            base = auth(baseline, "127.0.0.1", requests, in_flight).summary()
            say(
                f"  baseline (files): {base['per_second']:,.0f} auth/s, "
                f"p50 {base['p50_ms']} ms, p99 {base['p99_ms']} ms"
            )
            prod = auth(product, nas_ip, requests, in_flight).summary()
            say(
                f"  product (sql):    {prod['per_second']:,.0f} auth/s, "
                f"p50 {prod['p50_ms']} ms, p99 {prod['p99_ms']} ms, "
                f"{prod['accepted']}/{prod['sent']} accepted, {prod['timeouts']} timeouts"
            )
            say(f"(c) burst: all {len(credentials)} subscribers re-authenticate at once")
            burst = auth(product, nas_ip, len(credentials), len(credentials)).summary()
            say(f"  {burst['accepted']}/{burst['sent']} accepted in {burst['wall_s']} s, p99 {burst['p99_ms']} ms")

            acct_flight = min(in_flight, ACCT_IN_FLIGHT)
            usernames = [u for u, _ in credentials]

            def acct_load(names: list[str], interims: int) -> dict:
                return asyncio.run(
                    run_acct_load(
                        server="127.0.0.1",
                        port=product.acct_port,
                        secret=NAS_SECRET.encode(),
                        usernames=names,
                        in_flight=acct_flight,
                        interim_updates=interims,
                        source_ip=nas_ip,
                        nas_ip=nas_ip,
                        timeout=3.0,
                        retries=1,
                    )
                ).summary()

            say(f"(d) accounting, {acct_flight} in flight: a Start for each of {len(usernames)} new sessions")
            starts = acct_load(usernames, 0)
            say(f"  {starts['per_second']:,.0f} new sessions/s, {starts['accepted']}/{starts['sent']} answered")
            say("    then a Start and two Interim-Updates per session (a second set of sessions)")
            acct = acct_load([f"{u}" for u in usernames], 2)
            with tenant_context(tenant), connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM network_radiussession")
                stored = cursor.fetchone()[0]
            acct["stored_sessions"] = stored
            acct["starts_per_s"] = starts["per_second"]
            acct["starts_sent"] = starts["sent"]
            acct["starts_answered"] = starts["accepted"]
            say(
                f"  {acct['per_second']:,.0f} records/s, {acct['accepted']}/{acct['sent']} answered; "
                f"{stored} sessions stored (expected {2 * len(usernames)})"
            )
            return RadiusBenchResult(
                subscribers=len(credentials),
                in_flight=in_flight,
                baseline=base,
                product=prod,
                burst=burst,
                accounting=acct,
            )
        finally:
            for server in servers:
                server.stop()
