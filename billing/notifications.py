"""Telling customers about overdue invoices. Dunning depends on the `Notifier` interface only;
the e-mail implementation is the default.

Never log personal data here: logs name customers by id and invoices by number, never by
e-mail address or name.
"""

from __future__ import annotations

import logging
from typing import Protocol, runtime_checkable

from django.conf import settings
from django.core.mail import send_mail

from compliance.pii.fields import ERASED

from .domain.money import round_to_currency
from .models import DunningEvent, Invoice

logger = logging.getLogger(__name__)


@runtime_checkable
class Notifier(Protocol):
    def send_reminder(self, invoice: Invoice, kind: str) -> bool:
        """Tell the invoice's customer about dunning step `kind` (a DunningEvent kind).
        Returns False when there was nobody to tell (no usable address); raises when sending
        failed, so that the step is retried by the next run."""
        ...


def format_money(amount, currency: str) -> str:
    """'12.34 USD', '1000 JPY': the currency's own minor unit, rounded half-up."""
    return f"{round_to_currency(amount, currency):f} {currency}"


SUBJECTS = {
    DunningEvent.Kind.REMINDER_1: "Payment reminder: invoice {number} is overdue",
    DunningEvent.Kind.REMINDER_7: "Second reminder: invoice {number} is 7 days overdue",
    DunningEvent.Kind.SUSPENDED: "Service suspended: invoice {number} is unpaid",
}


def reminder_message(invoice: Invoice, kind: str) -> tuple[str, str]:
    """(subject, body) of the notice for `kind`. Plain text; no personal data beyond the
    account code (the message goes to the customer's own address)."""
    amount = format_money(invoice.balance_due, invoice.currency)
    subject = SUBJECTS[kind].format(number=invoice.number)
    lines = [
        "Dear customer,",
        "",
        f"invoice {invoice.number} of {invoice.issue_date:%Y-%m-%d} (account {invoice.customer.account_code}) "
        f"was due on {invoice.due_date:%Y-%m-%d} and is overdue.",
        f"Amount outstanding: {amount}.",
        "",
    ]
    if kind == DunningEvent.Kind.SUSPENDED:
        lines.append("Your service has been suspended. It is restored as soon as every overdue invoice is paid.")
    else:
        lines.append("Please pay the amount outstanding to keep your service running.")
    lines += ["", "If you have paid already, please disregard this message."]
    return subject, "\n".join(lines)


class EmailNotifier:
    """Sends the notice to the customer's (decrypted) e-mail address with Django's send_mail,
    from DEFAULT_FROM_EMAIL. A customer whose data was erased has no address: nothing is sent."""

    def send_reminder(self, invoice: Invoice, kind: str) -> bool:
        customer = invoice.customer
        address = customer.email
        if not address or address == ERASED:
            logger.warning(
                "dunning: customer %s has no e-mail address; %s for invoice %s not sent",
                customer.pk,
                kind,
                invoice.number,
            )
            return False
        subject, body = reminder_message(invoice, kind)
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [address], fail_silently=False)
        logger.info("dunning: %s sent for invoice %s (customer %s)", kind, invoice.number, customer.pk)
        return True
