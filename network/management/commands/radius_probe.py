"""Send real Access-Requests to a RADIUS server and show what it answers:

    python manage.py radius_probe --server 127.0.0.1 --port 18112 --secret S --user alice --password pw
    python manage.py radius_probe ... --chap --source-ip 127.0.0.12 --count 100

The server recognises the NAS (and so the tenant) by the request's source address: --source-ip
sends as that NAS (any 127.0.0.0/8 address is local on Linux). The exit status is non-zero when
the server does not answer, or when the answer is not the one --expect names.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from django.core.management.base import BaseCommand, CommandError

from network.radius.client import AuthResult, authenticate
from network.radius.dictionary import packet_code_name


@dataclass(frozen=True)
class ProbeTarget:
    server: str
    port: int
    secret: bytes
    source_ip: str | None


def resolve_target(options: dict) -> ProbeTarget:
    """Where the probe goes and as which NAS: --nas NAME --tenant SLUG plays a registered NAS
    (its address becomes the source address, its secret the shared secret); otherwise
    --secret and --source-ip say it."""
    server = _ip(options["server"], "--server")
    port = options["port"]
    if not 1 <= port <= 65535:
        raise CommandError(f"--port must be 1-65535, got {port}")
    if options.get("nas"):
        if options["secret"] or options["source_ip"]:
            raise CommandError("--nas takes the NAS's own secret and address: drop --secret/--source-ip")
        source_ip, secret = _registered_nas(options["nas"], options.get("tenant"))
        return ProbeTarget(server=server, port=port, secret=secret, source_ip=source_ip)
    source_ip = None if options["source_ip"] is None else _ip(options["source_ip"], "--source-ip")
    if source_ip is not None and ipaddress.ip_address(source_ip).version != ipaddress.ip_address(server).version:
        raise CommandError(f"--source-ip {source_ip} and --server {server} are not the same IP version")
    secret = options["secret"]
    if not secret:
        raise CommandError("--secret (or --nas with --tenant) is required")
    return ProbeTarget(server=server, port=port, secret=secret.encode(), source_ip=source_ip)


def _registered_nas(name: str, slug: str | None) -> tuple[str, bytes]:
    from django_tenants.utils import tenant_context

    from network.models import Nas
    from network.services import nas_secret
    from tenants.models import Tenant

    if not slug:
        raise CommandError("--nas needs --tenant (the NAS name is per tenant)")
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None:
        raise CommandError(f"no tenant {slug!r}")
    with tenant_context(tenant):
        nas = Nas.objects.filter(name=name).first()
        if nas is None:
            raise CommandError(f"tenant {slug!r} has no NAS named {name!r}")
        return nas.ip_address, nas_secret(nas)


def _ip(value: str, flag: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise CommandError(f"{flag} must be an IP address, got {value!r}") from None


def _label(target: ProbeTarget) -> str:
    host = f"[{target.server}]" if ":" in target.server else target.server
    return f"{host}:{target.port}"


class Command(BaseCommand):
    help = "Send real Access-Request(s) (PAP or CHAP) and print the answer, its attributes and the latency."

    def add_arguments(self, parser):
        parser.add_argument("--server", required=True, help="RADIUS server IP address")
        parser.add_argument("--port", type=int, default=1812, help="authentication port (default 1812)")
        parser.add_argument("--secret", help="shared secret of the NAS the probe plays")
        parser.add_argument("--nas", help="play this registered NAS (its address and secret); needs --tenant")
        parser.add_argument("--tenant", help="slug of the tenant whose NAS --nas names")
        parser.add_argument("--user", required=True)
        parser.add_argument("--password", required=True)
        parser.add_argument("--chap", action="store_true", help="CHAP instead of PAP")
        parser.add_argument("--source-ip", help="send from this local address, i.e. as the NAS with this IP")
        parser.add_argument("--nas-ip", help="NAS-IP-Address attribute (default: --source-ip, else 127.0.0.1)")
        parser.add_argument("--count", type=int, default=1, help="requests to send, one after the other")
        parser.add_argument("--timeout", type=float, default=2.0, help="seconds to wait per attempt")
        parser.add_argument("--retries", type=int, default=1, help="retransmissions after the first attempt")
        parser.add_argument("--expect", choices=["accept", "reject"], help="fail unless every answer is this")

    def handle(self, *args, **options):
        target = resolve_target(options)
        count, timeout, retries = options["count"], options["timeout"], options["retries"]
        if not 1 <= count <= 100_000:
            raise CommandError(f"--count must be 1-100000, got {count}")
        if not 0 < timeout <= 60:
            raise CommandError(f"--timeout must be in (0, 60] seconds, got {timeout}")
        if not 0 <= retries <= 10:
            raise CommandError(f"--retries must be 0-10, got {retries}")
        nas_ip = _ip(options["nas_ip"], "--nas-ip") if options["nas_ip"] else (target.source_ip or "127.0.0.1")
        method = "chap" if options["chap"] else "pap"

        results: list[AuthResult] = []
        for _ in range(count):
            try:
                result = authenticate(
                    server=target.server,
                    port=target.port,
                    secret=target.secret,
                    username=options["user"],
                    password=options["password"],
                    method=method,
                    nas_ip=nas_ip,
                    source_ip=target.source_ip,
                    timeout=timeout,
                    retries=retries,
                )
            except OSError as exc:
                raise CommandError(f"cannot send from {target.source_ip or 'the default address'}: {exc}") from None
            except ValueError as exc:
                raise CommandError(str(exc)) from None
            results.append(result)
        self._report(target, method, results)

        silent = [r for r in results if r.code is None]
        if silent:
            window = f"{timeout * (retries + 1):g}s"
            prefix = "" if len(silent) == count else f"{len(silent)} of {count} requests: "
            raise CommandError(f"{prefix}no answer from {_label(target)} within {window}")
        odd = [r for r in results if r.error]
        if odd:
            raise CommandError(odd[0].error)
        expected = {"accept": 2, "reject": 3}.get(options["expect"])
        if expected is not None and any(r.code != expected for r in results):
            wrong = sum(r.code != expected for r in results)
            raise CommandError(f"{wrong} of {count} answers were not {packet_code_name(expected)}")

    def _report(self, target: ProbeTarget, method: str, results: list[AuthResult]) -> None:
        how = method.upper() + (f", sent from {target.source_ip}" if target.source_ip else "")
        answered = [r for r in results if r.code is not None]
        if len(results) == 1:
            result = results[0]
            if result.code is None:
                return
            style = self.style.SUCCESS if result.accepted else self.style.WARNING
            attempts = f", {result.attempts} attempts" if result.attempts > 1 else ""
            self.stdout.write(
                style(f"{result.code_name} from {_label(target)} ({how}) in {result.latency_ms:.2f} ms{attempts}")
            )
        else:
            counts: dict[str, int] = {}
            for r in results:
                counts[r.code_name] = counts.get(r.code_name, 0) + 1
            tally = ", ".join(f"{n} {name}" for name, n in sorted(counts.items()))
            self.stdout.write(f"{len(results)} Access-Requests to {_label(target)} ({how}): {tally}")
            latencies = sorted(r.latency_ms for r in answered)
            if latencies:
                p50 = latencies[(len(latencies) + 1) // 2 - 1]
                self.stdout.write(f"latency p50 {p50:.2f} ms, max {latencies[-1]:.2f} ms")
        if answered and answered[-1].attributes:
            self.stdout.write("reply attributes" + (" (last answer):" if len(results) > 1 else ":"))
            for name, values in answered[-1].attributes.items():
                for value in values:
                    self.stdout.write(f"  {name} = {value!r}")
