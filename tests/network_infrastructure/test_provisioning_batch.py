"""Activating many subscriptions at once (`network.provisioning_batch`): the same jobs, rows,
RADIUS view and audit trail as one `provision()` per subscription, failures kept to the
subscription they belong to, and a batch step that breaks as a whole handed back to the
one-by-one path without losing or doubling anything.

Every test runs once per matrix tenant inside a rolled-back transaction."""

from __future__ import annotations

import datetime
import logging
from collections import Counter

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from compliance.audit import Actor
from compliance.models import AuditEvent
from customers import services as cs
from customers.models import SubscriptionPlanChange, SubscriptionStatusChange
from network.inventory import ip_pool_create
from network.models import Device, IpAssignment, IpPool, Onu, PonPort, PppoeAccount, ProvisioningJob
from network.provisioning import provision, provision_retry
from network.provisioning_batch import provision_activate_many
from tests.customers.factories import CustomerFactory, PlanFactory, ServiceAddressFactory

pytestmark = [pytest.mark.network_monitoring, pytest.mark.integration]

ACTOR = Actor.system("batch provisioning tests")


def _subscription(plan=None):
    customer = CustomerFactory()
    address = ServiceAddressFactory(customer=customer)
    return cs.subscription_create(customer=customer, plan=plan or PlanFactory(), service_address=address, actor=ACTOR)


def _onus(*serials: str) -> None:
    olt = Device.objects.create(name="olt-batch", kind="olt", vendor="huawei", management_ip="192.0.2.77")
    port = PonPort.objects.create(olt=olt, index=4194312192, name="GPON 0/1/0")
    for n, serial in enumerate(serials):
        Onu.objects.create(olt=olt, pon_port=port, serial=serial, onu_index=n, state="discovered")


RADIUS_QUERIES = {
    "authorize_check": "SELECT attribute, value FROM radius.authorize_check(%s, %s)",
    "authorize_reply": "SELECT attribute, value FROM radius.authorize_reply(%s, %s)",
}


def _radius(function: str, username: str) -> dict:
    """What FreeRADIUS reads for the user, through the functions its role may call."""
    with connection.cursor() as cursor:
        cursor.execute(RADIUS_QUERIES[function], [connection.schema_name, username])
        return dict(cursor.fetchall())


def _job_actions(job: ProvisioningJob) -> Counter:
    return Counter(
        AuditEvent.objects.filter(object_type="network.provisioningjob", object_id=str(job.pk)).values_list(
            "action", flat=True
        )
    )


def _subject_actions(sub) -> list[str]:
    """The audit actions about what a subscription's activation touched, in a stable order."""
    ip = IpAssignment.objects.get(subscription=sub)
    account = PppoeAccount.objects.get(subscription=sub)
    onu = Onu.objects.get(subscription=sub)
    targets = [
        ("network.ipassignment", ip.pk),
        ("network.pppoeaccount", account.pk),
        ("network.onu", onu.pk),
        ("customers.subscription", sub.pk),
    ]
    return [
        action
        for object_type, pk in targets
        for action in AuditEvent.objects.filter(object_type=object_type, object_id=str(pk))
        .exclude(action="subscription.created")
        .values_list("action", flat=True)
    ]


@pytest.mark.behavior
def test_a_batch_activation_leaves_what_one_by_one_activations_leave(tenant):
    # given four pending fiber subscriptions, a static pool and their ONUs found on the OLT
    _onus("HWTC00000A01", "HWTC00000A02", "HWTC00000A03", "HWTC00000A04")
    pool = ip_pool_create(name="street", network="100.64.30.0/28", gateway="100.64.30.1", actor=ACTOR)
    subs = [_subscription() for _ in range(4)]
    day = "2026-11-05"
    # when the first is activated alone and the other three in one batch
    alone = provision(
        subscription=subs[0],
        action="activate",
        actor=ACTOR,
        params={"pool": pool.name, "onu_serial": "HWTC00000A01", "activated_on": day},
    )
    outcomes = provision_activate_many(
        requests=[
            (sub.pk, {"pool": pool.name, "onu_serial": f"HWTC00000A0{n}", "activated_on": day})
            for n, sub in enumerate(subs[1:], start=2)
        ],
        actor=ACTOR,
    )
    # then every batch job is done with the same steps, results and audit trail as the lone one
    assert alone.state == "done"
    jobs = [outcomes[sub.pk] for sub in subs[1:]]
    assert [(job.state, job.error, job.attempts) for job in jobs] == [("done", "", 1)] * 3
    for job in [alone, *jobs]:
        stored = ProvisioningJob.objects.get(pk=job.pk)
        assert stored.steps_done == ["allocate_ip", "radius_credentials", "bind_onu", "mark_active"]
        assert (stored.state, stored.current_step) == ("done", "")
        assert stored.finished_at is not None
        assert _job_actions(job) == _job_actions(alone)
        assert (
            job.result.keys() == alone.result.keys() == {"ip_address", "pppoe_username", "pppoe_password", "onu_serial"}
        )
    # the addresses are the lowest free ones, each given once, in request order
    assert [IpAssignment.objects.get(subscription=s).address for s in subs] == [
        "100.64.30.2",
        "100.64.30.3",
        "100.64.30.4",
        "100.64.30.5",
    ]
    for sub, job in zip(subs, [alone, *jobs], strict=True):
        sub.refresh_from_db()
        assert (sub.status, sub.activated_on) == ("active", datetime.date(2026, 11, 5))
        account = PppoeAccount.objects.get(subscription=sub)
        assert account.username == job.result["pppoe_username"]
        # FreeRADIUS sees the same credentials and reply as for the lone activation
        assert _radius("authorize_check", account.username) == {"Cleartext-Password": job.result["pppoe_password"]}
        assert _radius("authorize_reply", account.username)["Framed-IP-Address"] == account.static_ip
        assert Onu.objects.get(serial=job.result["onu_serial"]).subscription_id == sub.pk
        assert Onu.objects.get(subscription=sub).state == "offline"  # until the next optics poll
        assert SubscriptionStatusChange.objects.filter(subscription=sub, to_status="active").count() == 1
        assert SubscriptionPlanChange.objects.filter(subscription=sub, from_plan=None).count() == 1
        assert sub.customer.status == "active"
        assert _subject_actions(sub) == _subject_actions(subs[0])
        assert job.result["pppoe_password"] not in str(ProvisioningJob.objects.get(pk=job.pk).params)


@pytest.mark.behavior
def test_each_subscription_fails_alone_with_its_reason_and_its_retry_resumes(tenant):
    # given a /29 pool (five addresses besides the gateway), ONUs for some subscriptions
    _onus("HWTC00000B01", "HWTC00000B02", "HWTC00000B03", "HWTC00000B04", "HWTC00000B05")
    pool = ip_pool_create(name="small", network="100.64.40.0/29", gateway="100.64.40.1", actor=ACTOR)
    subs = [_subscription() for _ in range(6)]
    terminated = _subscription()
    cs.subscription_terminate(
        subscription=terminated, terminated_on=datetime.date(2026, 11, 1), actor=ACTOR, reason="never connected"
    )
    # when a batch mixes good requests with an unknown ONU, a bad parameter, a terminated
    # subscription, and one more subscriber than the pool has addresses for
    requests = [
        (subs[0].pk, {"pool": pool.name, "onu_serial": "HWTC00000B01"}),
        (subs[1].pk, {"pool": pool.name, "onu_serial": "HWTC0BADCAFE"}),
        (subs[2].pk, {"pool": pool.name, "onu_serial": "HWTC00000B03"}),
        (subs[3].pk, {"pool": pool.name, "password": "chosen-by-me"}),
        (subs[4].pk, {"pool": pool.name, "onu_serial": "HWTC00000B04"}),
        (subs[5].pk, {"pool": pool.name, "onu_serial": "HWTC00000B05"}),
        (terminated.pk, {"pool": pool.name}),
    ]
    extra = _subscription()
    requests.append((extra.pk, {"pool": pool.name}))
    outcomes = provision_activate_many(requests=requests, actor=ACTOR)
    # then the wrong requests create no job and say why
    assert isinstance(outcomes[subs[3].pk], ValidationError)
    assert "never passed to a job" in str(outcomes[subs[3].pk])
    assert isinstance(outcomes[terminated.pk], ValidationError)
    assert "terminated: it cannot be activated" in str(outcomes[terminated.pk])
    assert not ProvisioningJob.objects.filter(subscription__in=[subs[3], terminated]).exists()
    # the good ones are done; the pool ran out for the last one; the unknown ONU stops at binding
    states = {pk: (o.state, o.current_step) for pk, o in outcomes.items() if isinstance(o, ProvisioningJob)}
    assert states == {
        subs[0].pk: ("done", ""),
        subs[1].pk: ("failed", "bind_onu"),
        subs[2].pk: ("done", ""),
        subs[4].pk: ("done", ""),
        subs[5].pk: ("done", ""),
        extra.pk: ("failed", "allocate_ip"),
    }
    assert "has no free address" in outcomes[extra.pk].error
    assert "No ONU HWTC0BADCAFE is known" in outcomes[subs[1].pk].error
    failed = ProvisioningJob.objects.get(pk=outcomes[subs[1].pk].pk)
    assert (failed.state, failed.steps_done) == ("failed", ["allocate_ip", "radius_credentials"])
    assert not PppoeAccount.objects.filter(subscription=extra).exists()
    assert IpAssignment.objects.filter(pool=pool).count() == 5  # every address given once
    assert len(set(IpAssignment.objects.values_list("address", flat=True))) == 5
    password = outcomes[subs[1].pk].result["pppoe_password"]

    # when the missing ONU is found and the failed job retried
    Onu.objects.create(
        olt=Device.objects.get(name="olt-batch"), pon_port=PonPort.objects.get(), serial="HWTC0BADCAFE", onu_index=9
    )
    job = provision_retry(failed, actor=ACTOR)
    # then it resumes at the binding: no second address, account or password
    assert (job.state, job.attempts) == ("done", 2)
    assert "pppoe_password" not in job.result
    assert PppoeAccount.objects.filter(subscription=subs[1]).count() == 1
    username = PppoeAccount.objects.get(subscription=subs[1]).username
    assert _radius("authorize_check", username) == {"Cleartext-Password": password}
    # and a second batch for a subscription with an open job is refused for that one only
    again = provision_activate_many(requests=[(extra.pk, {"pool": pool.name})], actor=ACTOR)
    assert "retry it" in str(again[extra.pk])


@pytest.mark.behavior
def test_a_batch_that_lists_a_subscription_twice_is_refused_whole(tenant):
    sub = _subscription()
    with pytest.raises(ValidationError, match="listed twice"):
        provision_activate_many(requests=[(sub.pk, {}), (sub.pk, {})], actor=ACTOR)
    assert not ProvisioningJob.objects.exists()


@pytest.mark.behavior
def test_a_batch_step_that_breaks_as_a_whole_goes_on_one_by_one_without_doubles(tenant, caplog):
    # given old data: an address inside pool "new" already held through an overlapping pool
    # (ip_pool_create refuses overlaps today; imported data may still have them)
    pool = ip_pool_create(name="new", network="100.64.50.0/29", gateway="100.64.50.1", actor=ACTOR)
    legacy = IpPool.objects.create(name="legacy", network="100.64.50.0/30", kind=IpPool.Kind.STATIC)
    IpAssignment.objects.create(pool=legacy, address="100.64.50.2", subscription=_subscription())
    subs = [_subscription() for _ in range(3)]
    # when a batch allocates from "new" (its one INSERT hits the unique address and rolls back)
    with caplog.at_level(logging.ERROR, logger="network.provisioning_batch"):
        outcomes = provision_activate_many(requests=[(s.pk, {"pool": pool.name}) for s in subs], actor=ACTOR)
    # then the batch says so and each job finished alone: the held address skipped, none doubled
    assert "go on one by one" in caplog.text
    assert [outcomes[s.pk].state for s in subs] == ["done", "done", "done"]
    assert [IpAssignment.objects.get(subscription=s).address for s in subs] == [
        "100.64.50.3",
        "100.64.50.4",
        "100.64.50.5",
    ]
    for sub in subs:
        job = ProvisioningJob.objects.get(subscription=sub)
        assert job.steps_done == ["allocate_ip", "radius_credentials", "mark_active"]
        assert AuditEvent.objects.filter(object_id=str(job.pk), action="provisioning.step_done").count() == 3
        assert PppoeAccount.objects.filter(subscription=sub).count() == 1
    assert AuditEvent.objects.filter(action="ip.allocated").count() == 3
