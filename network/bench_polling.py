"""Polling benchmark: N devices polled and stored through the real poller, against the raw request
rate of one easysnmp session on the same agents.

The agents are Debian's `snmpd` (Net-SNMP, in C), serving this machine's own IF-MIB (its
interfaces and their real, moving counters). One snmpd listens on many loopback addresses, so
each device has its own management IP; `agents` snmpd processes share the devices.

  (a) a throwaway tenant with N devices (community sealed like any device), the snmpd agents,
      interface discovery and a first poll (the counters' baseline; not measured);
  (b) a measured round: `poll_devices` (thread pool) then `store_polls` (COPY, fault detection),
      both timed - polls/s including storage, and the storage share;
  (c) baseline: one easysnmp session sending the same GET (the same OIDs as one device poll) as
      fast as it can, for a few seconds;
  (d) removal of the agents and the tenant."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.db import transaction
from django_tenants.utils import tenant_context

BASE_PORT = 16300
COMMUNITY = "bench-ro"


@dataclass
class PollingBenchResult:
    devices: int
    agents: int
    workers: int
    counters_per_device: int
    poll_seconds: float
    store_seconds: float
    reachable: int
    baseline_requests_per_s: float
    latency_ms: float = 0.0

    @property
    def polls_per_s(self) -> float:
        total = self.poll_seconds + self.store_seconds
        return self.devices / total if total else 0.0

    def as_json_dict(self) -> dict:
        total = self.poll_seconds + self.store_seconds
        return {
            "bench": "polling",
            "devices": self.devices,
            "agents": self.agents,
            "workers": self.workers,
            "counters_per_device": self.counters_per_device,
            "polls_per_s": round(self.polls_per_s, 1),
            "success_rate": round(self.reachable / self.devices, 5) if self.devices else 0.0,
            "baseline_requests_per_s": round(self.baseline_requests_per_s, 1),
            "ratio": round(self.polls_per_s / self.baseline_requests_per_s, 3) if self.baseline_requests_per_s else 0.0,
            "storage_share": round(self.store_seconds / total, 3) if total else 0.0,
            "latency_ms": self.latency_ms,
            "poll_seconds": round(self.poll_seconds, 3),
            "store_seconds": round(self.store_seconds, 3),
        }


def device_address(index: int) -> str:
    return f"127.0.{2 + index // 250}.{1 + index % 250}"


class SnmpdAgents:
    """`count` snmpd processes; agent k listens on port BASE_PORT + k at the addresses of its devices."""

    def __init__(self, addresses_by_agent: list[list[str]]):
        self.addresses_by_agent = addresses_by_agent
        self.dir = Path(tempfile.mkdtemp(prefix="bench-snmpd-"))
        self.processes: list[subprocess.Popen] = []

    def start(self) -> SnmpdAgents:
        binary = shutil.which("snmpd") or "/usr/sbin/snmpd"
        if not os.path.exists(binary):
            raise RuntimeError("snmpd is not installed: run `make setup`")
        for k, addresses in enumerate(self.addresses_by_agent):
            conf = self.dir / f"snmpd-{k}.conf"
            conf.write_text(f"rocommunity {COMMUNITY} 127.0.0.0/8\n")
            endpoints = ",".join(f"udp:{address}:{BASE_PORT + k}" for address in addresses)
            self.processes.append(
                subprocess.Popen(  # noqa: S603 - fixed binary, our own arguments
                    [
                        binary,
                        "-f",
                        "-Lf",
                        str(self.dir / f"snmpd-{k}.log"),
                        "-C",
                        "-c",
                        str(conf),
                        "-p",
                        str(self.dir / f"snmpd-{k}.pid"),
                        endpoints,
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    env={**os.environ, "MIBS": ""},
                )
            )
        time.sleep(1.0)
        dead = [p for p in self.processes if p.poll() is not None]
        if dead:
            self.stop()
            raise RuntimeError(f"{len(dead)} snmpd agent(s) did not start (see {self.dir})")
        return self

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def _baseline(address: str, port: int, oids: list[str], seconds: float = 3.0) -> float:
    from easysnmp import Session

    session = Session(
        hostname=address, remote_port=port, community=COMMUNITY, version=2, use_numeric=True, timeout=1, retries=0
    )
    session.get(oids)  # warm-up
    sent, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        session.get(oids)
        sent += 1
    return sent / (time.perf_counter() - started)


def agent_address(index: int) -> str:
    """Where the real agent of device `index` listens when a delay relay sits in front of it."""
    return f"127.1.{2 + index // 250}.{1 + index % 250}"


def bench_polling(
    *, devices: int = 1000, agents: int = 2, workers: int = 32, latency_ms: float = 0.0, log=None
) -> PollingBenchResult:
    from network.inventory import device_register
    from network.models import Device, Interface
    from network.snmp import poller

    from .bench_support import throwaway_tenant

    if not 1 <= devices <= 250 * 250 or agents < 1 or workers < 1:
        raise ValueError("devices 1..62500, agents and workers at least 1")
    say: Callable[[str], None] = log or (lambda _line: None)
    addresses = [device_address(i) for i in range(devices)]
    # With latency, the agents listen elsewhere and a relay on each device address delays requests.
    agent_addresses = [agent_address(i) for i in range(devices)] if latency_ms else addresses
    shares = [agent_addresses[k::agents] for k in range(agents)]
    snmpd = SnmpdAgents(shares)
    relay = None
    with throwaway_tenant("bench-poll", say=say) as (tenant, actor):
        try:
            say(
                f"  {devices} devices on {agents} snmpd agent(s)" + (f", {latency_ms:g} ms added" if latency_ms else "")
            )
            snmpd.start()
            if latency_ms:
                from network.snmp.delay import DelayRelay

                routes = [
                    (address, BASE_PORT + i % agents, agent_addresses[i], BASE_PORT + i % agents)
                    for i, address in enumerate(addresses)
                ]
                relay = DelayRelay(routes, delay_s=latency_ms / 1000).start()
            with tenant_context(tenant):
                port_of = {address: BASE_PORT + i % agents for i, address in enumerate(addresses)}
                for i, address in enumerate(addresses):
                    with transaction.atomic():
                        device_register(
                            name=f"bench-{i:05d}",
                            kind=Device.Kind.SWITCH,
                            management_ip=address,
                            snmp_port=port_of[address],
                            community=COMMUNITY,
                            actor=actor,
                        )
                rows = list(Device.objects.order_by("pk"))
                poller.discover_devices(rows, workers=workers, timeout=2.0, retries=1)
                interfaces = Interface.objects.filter(device=rows[0]).count()
                first = poller.poll_devices(rows, workers=workers, timeout=2.0, retries=1)
                poller.store_polls(first)
                say(f"  {interfaces} interfaces per device; first poll stored (counter baselines)")
                time.sleep(1.0)  # let the counters move
                rows = list(Device.objects.order_by("pk"))
                say(f"(b) measured round: poll {devices} devices ({workers} in flight), then store")
                started = time.perf_counter()
                polls = poller.poll_devices(rows, workers=workers, timeout=2.0, retries=1)
                poll_s = time.perf_counter() - started
                started = time.perf_counter()
                stored = poller.store_polls(polls, evaluate_faults=False)
                write_s = time.perf_counter() - started
                evaluate = poller._fault_evaluator()
                faults = evaluate(list(polls)) if evaluate is not None else None
                store_s = time.perf_counter() - started
                from django.db.models import Count

                from network.models import Alarm

                opened = dict(Alarm.objects.values_list("kind").annotate(n=Count("id")))
                say(
                    f"  storage: samples and state {write_s:.2f} s, fault detection {store_s - write_s:.2f} s "
                    f"({getattr(faults, 'events', {})}; alarms open by kind: {opened})"
                )
                reachable = sum(1 for p in polls if p.reachable)
                oids = poller._poll_oids(poller.build_jobs([rows[0]])[0])
                say(
                    f"  polled in {poll_s:.2f} s, stored in {store_s:.2f} s ({stored.samples} samples); "
                    f"{reachable}/{devices} reachable; {len(oids)} values per device"
                )
            say(f"(c) baseline: one easysnmp session, the same {len(oids)}-value GET, sequential")
            baseline = _baseline(agent_addresses[0], port_of[addresses[0]], oids)  # the agent itself
            say(f"  {baseline:,.0f} requests/s")
            return PollingBenchResult(
                devices=devices,
                agents=agents,
                workers=workers,
                counters_per_device=len(oids),
                poll_seconds=poll_s,
                store_seconds=store_s,
                reachable=reachable,
                baseline_requests_per_s=baseline,
                latency_ms=latency_ms,
            )
        finally:
            if relay is not None:
                relay.stop()
            snmpd.stop()
