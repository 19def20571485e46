"""Provisioning benchmark: N subscriptions activated through the full workflow (IP from a pool,
RADIUS credentials, ONU bind, mark active), against inserting the same rows directly.

  (a) a throwaway tenant (`bench-prov-<random>`) with N pending fiber subscriptions (customers
      through the services, not measured), an OLT with N discovered ONUs, a /16 pool;
  (b) every subscription activated, split over `workers` forked processes: by default through
      `provision_activate_many` (batches of 200, one transaction per step and batch), with
      `mode="single"` through `provision(action="activate")` one subscription at a time;
  (c) checks: N jobs done, N distinct addresses, N PPPoE accounts, N ONUs bound, N subscriptions
      active - nothing missing, nothing twice;
  (d) baseline: the same IP assignment, PPPoE account, job rows deleted and inserted again in one
      transaction (bulk INSERT), with the same ONU and subscription updates;
  (e) removal of the tenant."""

from __future__ import annotations

import gc
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from django.db import connection, connections, transaction
from django_tenants.utils import tenant_context

from compliance.audit import Actor
from network.models import ProvisioningJob

MODES = ("batch", "single")


@dataclass
class ProvisioningBenchResult:
    subscriptions: int
    workers: int
    mode: str
    seconds: float
    baseline_seconds: float
    done: int
    distinct_ips: int
    accounts: int
    onus_bound: int
    active: int

    @property
    def activations_per_s(self) -> float:
        return self.done / self.seconds if self.seconds else 0.0

    @property
    def baseline_per_s(self) -> float:
        return self.subscriptions / self.baseline_seconds if self.baseline_seconds else 0.0

    @property
    def complete(self) -> bool:
        n = self.subscriptions
        return self.done == self.distinct_ips == self.accounts == self.onus_bound == self.active == n

    def as_json_dict(self) -> dict:
        return {
            "bench": "provisioning",
            "subscriptions": self.subscriptions,
            "workers": self.workers,
            "mode": self.mode,
            "activations_per_s": round(self.activations_per_s, 1),
            "baseline_per_s": round(self.baseline_per_s, 1),
            "ratio": round(self.activations_per_s / self.baseline_per_s, 4) if self.baseline_per_s else 0.0,
            "complete": self.complete,
            "jobs_done": self.done,
            "distinct_ips": self.distinct_ips,
            "pppoe_accounts": self.accounts,
            "onus_bound": self.onus_bound,
            "active": self.active,
        }


def build(*, count: int, actor: Actor, say: Callable[[str], None]) -> list[tuple[int, str]]:
    from customers import services as cs
    from network.models import Device, IpPool, Onu, PonPort

    plan = cs.plan_create(
        actor=actor,
        code="fiber-300",
        name="Fiber 300",
        download_kbps=300_000,
        upload_kbps=100_000,
        monthly_price="45.00",
    )
    olt = Device.objects.create(name="olt-1", kind="olt", vendor="huawei", management_ip="192.0.2.200")
    port = PonPort.objects.create(olt=olt, index=4194312192, name="GPON 0/1/0")
    IpPool.objects.create(name="bench-pool", network="100.64.0.0/16", gateway="100.64.0.1")
    work = []
    for i in range(count):
        with transaction.atomic():
            customer = cs.customer_create(actor=actor, name=f"Bench {i}", email=f"bench{i}@example.net")
            address = cs.service_address_create(
                customer=customer,
                street=f"{i} Fiber Way",
                city="Springfield",
                postal_code="12345",
                country="US",
                actor=actor,
            )
            sub = cs.subscription_create(customer=customer, plan=plan, service_address=address, actor=actor)
        serial = f"HWTC{i:08X}"
        Onu.objects.create(olt=olt, pon_port=port, serial=serial, onu_index=i % 128, state="discovered")
        work.append((sub.pk, serial))
        if (i + 1) % 250 == 0:
            say(f"  built {i + 1} / {count} pending subscriptions")
    return work


def _activate(share: list[tuple[int, str]], actor: Actor, mode: str) -> None:
    from customers.models import Subscription
    from network.provisioning import provision
    from network.provisioning_batch import provision_activate_many

    def params(serial: str) -> dict:
        return {"pool": "bench-pool", "onu_serial": serial}

    if mode == "batch":
        outcomes = provision_activate_many(requests=[(sub_id, params(serial)) for sub_id, serial in share], actor=actor)
        jobs = list(outcomes.items())
    else:
        jobs = [
            (sub_id, provision(subscription=Subscription(pk=sub_id), action="activate", actor=actor, params=params(s)))
            for sub_id, s in share
        ]
    for sub_id, job in jobs:
        if not isinstance(job, ProvisioningJob) or job.state != "done":
            detail = job if not isinstance(job, ProvisioningJob) else f"{job.state} at {job.current_step}: {job.error}"
            raise RuntimeError(f"subscription {sub_id}: {detail}")


def run_forked(*, tenant, work: list[tuple[int, str]], actor: Actor, workers: int, mode: str) -> None:
    from compliance.pii.keystore import get_keystore

    size = -(-len(work) // workers)
    shares = [work[i : i + size] for i in range(0, len(work), size)]
    connections.close_all()
    get_keystore().close()
    gc.collect()
    gc.freeze()
    children = []
    for share in shares:
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                connection.set_tenant(tenant)
                _activate(share, actor, mode)
            except BaseException:  # noqa: BLE001 - reported by the exit status
                traceback.print_exc()
                code = 1
            finally:
                connections.close_all()
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children.append(pid)
    failures = [pid for pid in children if os.waitpid(pid, 0)[1] != 0]
    gc.unfreeze()
    connection.set_tenant(tenant)
    if failures:
        raise RuntimeError(f"{len(failures)} provisioning worker(s) failed")


def baseline() -> float:
    """Delete the rows the workflow wrote and insert them again at once (bulk), with the same
    updates of ONUs and subscriptions: what provisioning costs without its steps and checks."""
    from compliance.models import AuditEvent
    from network.models import IpAssignment, Onu, PppoeAccount, ProvisioningJob

    ips = list(IpAssignment.objects.all())
    accounts = list(PppoeAccount.objects.all())
    jobs = list(ProvisioningJob.objects.all())
    onus = list(Onu.objects.filter(subscription__isnull=False).values_list("pk", "subscription_id"))
    with transaction.atomic():
        IpAssignment.objects.all().delete()
        PppoeAccount.objects.all().delete()
        ProvisioningJob.objects.all().delete()
    started = time.perf_counter()
    with transaction.atomic():
        IpAssignment.objects.bulk_create(ips, batch_size=1000)
        PppoeAccount.objects.bulk_create(accounts, batch_size=1000)
        ProvisioningJob.objects.bulk_create(jobs, batch_size=1000)
        AuditEvent.objects.bulk_create(
            [
                AuditEvent(
                    actor_type="system",
                    actor_label="baseline",
                    action="provisioning.done",
                    object_type="network.provisioningjob",
                    object_id=str(j.pk),
                )
                for j in jobs
            ],
            batch_size=1000,
        )
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE network_onu SET state = 'online', authorised_at = now() WHERE id = ANY(%s)",
                [[pk for pk, _sub in onus]],
            )
            cursor.execute(
                "UPDATE customers_subscription SET status = 'active' WHERE id = ANY(%s)",
                [[sub for _pk, sub in onus]],
            )
    return time.perf_counter() - started


def bench_provisioning(
    *, subscriptions: int = 1000, workers: int = 2, mode: str = "batch", log=None
) -> ProvisioningBenchResult:
    from network.models import IpAssignment, Onu, PppoeAccount, ProvisioningJob

    from .bench_support import throwaway_tenant

    if subscriptions < 1 or workers < 1:
        raise ValueError("subscriptions and workers must be at least 1")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    say = log or (lambda _line: None)
    with throwaway_tenant("bench-prov", say=say) as (tenant, actor):
        say(f"  {subscriptions} pending fiber subscriptions")
        with tenant_context(tenant):
            work = build(count=subscriptions, actor=actor, say=say)
        say(f"(b) activating {len(work)} subscriptions with {workers} worker(s), {mode} mode")
        connection.set_tenant(tenant)
        started = time.perf_counter()
        if workers == 1:
            _activate(work, actor, mode)
        else:
            run_forked(tenant=tenant, work=work, actor=actor, workers=workers, mode=mode)
        seconds = time.perf_counter() - started
        say(f"  {len(work)} in {seconds:.2f} s = {len(work) / seconds:,.0f} activations/s")
        with tenant_context(tenant):
            from customers.models import Subscription

            figures = {
                "done": ProvisioningJob.objects.filter(state="done", action="activate").count(),
                "distinct_ips": IpAssignment.objects.values("address").distinct().count(),
                "accounts": PppoeAccount.objects.count(),
                "onus_bound": Onu.objects.filter(subscription__isnull=False).count(),
                "active": Subscription.objects.filter(status="active").count(),
            }
            say(f"(c) checks: {figures}")
            base_s = baseline()
        say(f"(d) baseline: the same rows inserted at once in {base_s:.3f} s = {len(work) / base_s:,.0f}/s")
        return ProvisioningBenchResult(
            subscriptions=len(work), workers=workers, mode=mode, seconds=seconds, baseline_seconds=base_s, **figures
        )
