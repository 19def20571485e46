"""Telling the network operations team about alarms: e-mail and a signed webhook.

Fault detection depends on the `AlarmNotifier` interface only. A notifier gets an `AlarmMessage`
(plain data, no ORM) and returns one `Delivery` per channel and target with its outcome; it
never raises: the poller must not stop because a mail server or a webhook receiver is down.
`network.alarms` records every delivery as an `AlarmNotification`.

Settings (read with defaults; none is required):

- ``NETWORK_ALARM_EMAILS``: addresses (a list, or one comma-separated string) that get alarm
  e-mails, sent with Django's ``send_mail`` from ``NETWORK_ALARM_FROM_EMAIL`` (default
  ``DEFAULT_FROM_EMAIL``).
- ``NETWORK_ALARM_WEBHOOK_URL``: an http(s) URL that gets a JSON POST per alarm event.
- ``NETWORK_ALARM_WEBHOOK_SECRET``: the HMAC key of the webhook's signature. A URL without a
  secret is not used (a warning is logged): unsigned alarms could be forged by anyone.
- ``NETWORK_ALARM_WEBHOOK_TIMEOUT``: seconds per request (default 5).

The webhook request carries ``X-ISP-Timestamp`` (Unix seconds), ``X-ISP-Event`` and
``X-ISP-Signature: sha256=<hex>``, the HMAC-SHA256 of ``<timestamp>.<body>`` with the secret
(see `webhook_signature`); a receiver recomputes it, compares in constant time and rejects old
timestamps. Redirects are not followed. The URL is operator configuration (settings), not tenant
input, so no address filtering is done here.

Messages carry the alarm, the device and, for outages, how many subscriptions are affected with
their account codes; never customer names or addresses.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from django.conf import settings
from django.core.mail import send_mail

logger = logging.getLogger(__name__)

SENT = "sent"
FAILED = "failed"


@dataclass(frozen=True)
class AlarmMessage:
    alarm_id: int
    event: str  # opened / cleared / flapping
    kind: str
    severity: str
    state: str
    summary: str
    dedupe_key: str
    opened_at: datetime.datetime
    last_seen_at: datetime.datetime
    cleared_at: datetime.datetime | None = None
    occurrences: int = 1
    flap_count: int = 0
    flapping: bool = False
    device_id: int | None = None
    device_name: str = ""
    device_kind: str = ""
    management_ip: str = ""
    tenant: str = ""  # schema name
    tenant_name: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    affected: dict[str, Any] | None = None  # {"count": n, "by_status": {...}, "subscriptions": [...]}

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        for name in ("opened_at", "last_seen_at", "cleared_at"):
            value = data[name]
            data[name] = value.isoformat() if value is not None else None
        return data


@dataclass(frozen=True)
class Delivery:
    channel: str  # email / webhook / ...
    target: str
    outcome: str  # sent / failed
    detail: str = ""


@runtime_checkable
class AlarmNotifier(Protocol):
    def notify(self, message: AlarmMessage) -> list[Delivery]:
        """Send `message`; one Delivery per channel and target. Never raises."""
        ...


def _one_line(text: str, limit: int) -> str:
    """No control characters (a device names its own interfaces: no header injection)."""
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text)
    return cleaned[:limit]


def message_subject(message: AlarmMessage) -> str:
    prefix = f"[{message.tenant_name or message.tenant}] " if (message.tenant_name or message.tenant) else ""
    verb = {"opened": "OPEN", "cleared": "CLEARED", "flapping": "FLAPPING"}.get(message.event, message.event.upper())
    return _one_line(f"{prefix}[{message.severity.upper()}] {verb}: {message.summary}", 200)


def message_body(message: AlarmMessage) -> str:
    lines = [
        f"{message.summary}",
        "",
        f"Event:      {message.event}",
        f"Alarm:      #{message.alarm_id} {message.kind} ({message.severity}), now {message.state}",
        f"Device:     {message.device_name} {message.management_ip} ({message.device_kind})".rstrip(),
        f"Opened:     {message.opened_at.isoformat()}",
        f"Last seen:  {message.last_seen_at.isoformat()}",
    ]
    if message.cleared_at is not None:
        lines.append(f"Cleared:    {message.cleared_at.isoformat()}")
    lines.append(f"Seen in {message.occurrences} poll(s); re-opened {message.flap_count} time(s) recently.")
    if message.event == "flapping":
        lines += [
            "",
            "The condition keeps coming and going. Further openings and clearings of this alarm are",
            "not notified until it has stayed clear for the flap window; then one 'cleared' follows.",
        ]
    if message.event == "cleared" and message.flapping:
        lines += ["", "It flapped, and has now stayed clear for the whole flap window."]
    if message.affected is not None:
        lines += ["", f"Affected subscriptions: {message.affected.get('count', 0)}"]
        for status, count in sorted((message.affected.get("by_status") or {}).items()):
            lines.append(f"  {status}: {count}")
        shown = message.affected.get("subscriptions") or []
        for row in shown:
            lines.append(f"  {row['account_code']}  subscription {row['subscription_id']}  {row['plan_code']}")
        if len(shown) < message.affected.get("count", 0):
            lines.append(f"  ... and {message.affected['count'] - len(shown)} more")
    if message.details:
        lines += ["", "Details:"]
        lines += [f"  {key}: {value}" for key, value in sorted(message.details.items())]
    return "\n".join(_one_line(line, 500) for line in lines)


class EmailAlarmNotifier:
    channel = "email"

    def __init__(self, recipients: Sequence[str], *, from_email: str | None = None):
        self.recipients = [r.strip() for r in recipients if r and r.strip()]
        self.from_email = from_email

    def notify(self, message: AlarmMessage) -> list[Delivery]:
        if not self.recipients:
            return []
        target = ", ".join(self.recipients)[:255]
        sender = self.from_email or getattr(settings, "NETWORK_ALARM_FROM_EMAIL", None) or settings.DEFAULT_FROM_EMAIL
        try:
            send_mail(message_subject(message), message_body(message), sender, self.recipients, fail_silently=False)
        except Exception as exc:  # any transport failure is an outcome to record
            logger.warning("alarm %s: e-mail (%s) failed: %s", message.alarm_id, message.event, type(exc).__name__)
            return [Delivery(self.channel, target, FAILED, _one_line(f"{type(exc).__name__}: {exc}", 300))]
        return [Delivery(self.channel, target, SENT)]


def webhook_signature(secret: str | bytes, timestamp: str, body: bytes) -> str:
    """'sha256=<hex>' of HMAC-SHA256(secret, '<timestamp>.' + body)."""
    key = secret.encode() if isinstance(secret, str) else secret
    digest = hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def webhook_verify(
    secret: str | bytes, *, timestamp: str, body: bytes, signature: str, max_age_s: int = 300, now: float | None = None
) -> bool:
    """What a receiver does: constant-time comparison, and a timestamp no older than `max_age_s`."""
    try:
        age = (now if now is not None else time.time()) - int(timestamp)
    except ValueError:
        return False
    if abs(age) > max_age_s:
        return False
    return hmac.compare_digest(webhook_signature(secret, timestamp, body), signature)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # urllib then raises HTTPError with the 3xx code


_OPENER = urllib.request.build_opener(_NoRedirect)


class WebhookAlarmNotifier:
    channel = "webhook"

    def __init__(self, url: str, secret: str | bytes, *, timeout: float = 5.0):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("the alarm webhook URL must be http(s)://host/...")
        if not secret:
            raise ValueError("the alarm webhook needs a secret to sign its requests")
        self.url = url
        self.secret = secret
        self.timeout = timeout
        # Recorded target: no credentials or query string (they may hold tokens).
        self.target = urllib.parse.urlunsplit((parts.scheme, parts.hostname + _port(parts), parts.path, "", ""))[:255]

    def request_for(self, message: AlarmMessage, *, timestamp: str | None = None) -> urllib.request.Request:
        body = json.dumps(message.as_json(), sort_keys=True, separators=(",", ":"), default=str).encode()
        timestamp = timestamp or str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "isp-backoffice-alarms/1",
            "X-ISP-Event": message.event,
            "X-ISP-Delivery": str(uuid.uuid4()),
            "X-ISP-Timestamp": timestamp,
            "X-ISP-Signature": webhook_signature(self.secret, timestamp, body),
        }
        return urllib.request.Request(self.url, data=body, headers=headers, method="POST")  # noqa: S310 (scheme checked)

    def notify(self, message: AlarmMessage) -> list[Delivery]:
        request = self.request_for(message)
        started = time.monotonic()
        try:
            with _OPENER.open(request, timeout=self.timeout) as response:
                status = response.status
                response.read(1024)
        except urllib.error.HTTPError as exc:
            status = exc.code
            exc.close()
        except Exception as exc:  # refused, timed out, DNS, TLS: recorded, never raised into the poller
            reason = getattr(exc, "reason", exc)
            logger.warning("alarm %s: webhook (%s) failed: %s", message.alarm_id, message.event, type(exc).__name__)
            return [Delivery(self.channel, self.target, FAILED, _one_line(f"{type(exc).__name__}: {reason}", 300))]
        elapsed_ms = (time.monotonic() - started) * 1000
        if 200 <= status < 300:
            return [Delivery(self.channel, self.target, SENT, f"HTTP {status} in {elapsed_ms:.0f} ms")]
        logger.warning("alarm %s: webhook (%s) answered HTTP %s", message.alarm_id, message.event, status)
        return [Delivery(self.channel, self.target, FAILED, f"HTTP {status}")]


def _port(parts: urllib.parse.SplitResult) -> str:
    return f":{parts.port}" if parts.port else ""


class CompositeNotifier:
    """Every notifier in turn; one failing does not stop the others."""

    channel = "composite"

    def __init__(self, notifiers: Iterable[AlarmNotifier] = ()):
        self.notifiers = list(notifiers)

    def notify(self, message: AlarmMessage) -> list[Delivery]:
        deliveries: list[Delivery] = []
        for notifier in self.notifiers:
            try:
                deliveries += notifier.notify(message)
            except Exception as exc:  # a notifier broke its promise not to raise: record, go on
                channel = getattr(notifier, "channel", type(notifier).__name__)[:16]
                deliveries.append(Delivery(channel, "", FAILED, _one_line(f"{type(exc).__name__}: {exc}", 300)))
        return deliveries


class RecordingNotifier:
    """For tests: keeps every message; `fail=True` records failures instead."""

    channel = "recording"

    def __init__(self, *, fail: bool = False):
        self.messages: list[AlarmMessage] = []
        self.fail = fail

    def notify(self, message: AlarmMessage) -> list[Delivery]:
        self.messages.append(message)
        outcome = FAILED if self.fail else SENT
        return [Delivery(self.channel, "memory", outcome, "simulated failure" if self.fail else "")]

    @property
    def events(self) -> list[tuple[str, str]]:
        return [(m.event, m.dedupe_key) for m in self.messages]


def _emails_setting() -> list[str]:
    value = getattr(settings, "NETWORK_ALARM_EMAILS", ()) or ()
    if isinstance(value, str):
        value = value.split(",")
    return [v.strip() for v in value if v and v.strip()]


def default_notifier() -> CompositeNotifier:
    """The notifiers the settings ask for (none configured: a notifier that sends nothing)."""
    notifiers: list[AlarmNotifier] = []
    emails = _emails_setting()
    if emails:
        notifiers.append(EmailAlarmNotifier(emails))
    url = getattr(settings, "NETWORK_ALARM_WEBHOOK_URL", "") or ""
    secret = getattr(settings, "NETWORK_ALARM_WEBHOOK_SECRET", "") or ""
    if url and not secret:
        logger.warning("NETWORK_ALARM_WEBHOOK_URL is set without NETWORK_ALARM_WEBHOOK_SECRET: webhook not used")
    elif url:
        timeout = float(getattr(settings, "NETWORK_ALARM_WEBHOOK_TIMEOUT", 5.0))
        notifiers.append(WebhookAlarmNotifier(url, secret, timeout=timeout))
    return CompositeNotifier(notifiers)
