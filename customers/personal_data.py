"""What customers holds about a data subject, for export and erasure (compliance.dsr.registry).

Erasure, in the customer's own rows:
- live subscriptions are terminated today (the usual service: audited, billing and RADIUS react
  after commit); the subscription rows and their history stay (billing needs them);
- the profile gets a fresh data key and is rewritten: the name becomes "Erased customer #<pseudonym>",
  every other personal field, both blind indexes and the tax-exemption certificate are cleared,
  consent to marketing is withdrawn and "do not sell" is set; the old data key is then shredded by
  compliance, so the old ciphertexts (and backups of them) are unreadable;
- service addresses keep only what decides taxes (country, region, locality) for the invoices
  that are retained; street, city and postal code are cleared;
- the portal login is deactivated, its password made unusable and its API tokens deleted."""

from __future__ import annotations

from compliance.dsr.registry import Category, ErasureContext, OptOut, model_row, register
from tenants.clock import tenant_today

from . import services
from .domain.lifecycle import SubscriptionStatus
from .models import Customer, ServiceAddress, Subscription

PROFILE_PII = ("name", "email", "phone", "national_id", "tax_id", "date_of_birth")
ADDRESS_PII = ("street", "city", "postal_code")


# --- export ----------------------------------------------------------------------------------------
def export_profile(customer: Customer) -> list[dict]:
    row = model_row(
        customer,
        exclude=("portal_user", "marketing_consent", "marketing_consent_at", "do_not_sell", "do_not_sell_at"),
        extra={"account_code": customer.account_code},
    )
    user = customer.portal_user
    row["portal_login"] = (
        None
        if user is None
        else {
            "username": user.get_username(),
            "is_active": user.is_active,
            "date_joined": user.date_joined,
            "last_login": user.last_login,
        }
    )
    return [row]


def export_consents(customer: Customer) -> list[dict]:
    return [
        {"consent": "marketing", "given": customer.marketing_consent, "changed_at": customer.marketing_consent_at},
        {
            "consent": "do_not_sell_or_share (CCPA opt-out)",
            "given": customer.do_not_sell,
            "changed_at": customer.do_not_sell_at,
        },
    ]


def export_addresses(customer: Customer) -> list[dict]:
    return [model_row(a, exclude=("customer",)) for a in ServiceAddress.objects.filter(customer=customer)]


def export_subscriptions(customer: Customer) -> list[dict]:
    rows = []
    subscriptions = Subscription.objects.filter(customer=customer).select_related("plan")
    for sub in subscriptions.prefetch_related("status_changes", "plan_changes__to_plan"):
        rows.append(
            model_row(
                sub,
                exclude=("customer",),
                extra={
                    "plan": {"code": sub.plan.code, "name": sub.plan.name},
                    "status_changes": [
                        model_row(c, exclude=("id", "subscription", "actor_label")) for c in sub.status_changes.all()
                    ],
                    "plan_changes": [
                        {"to_plan": c.to_plan.code, "effective_on": c.effective_on, "recorded_at": c.recorded_at}
                        for c in sub.plan_changes.all()
                    ],
                },
            )
        )
    return rows


def _customer_objects(customer: Customer):
    yield "customers.customer", str(customer.pk)


def _address_objects(customer: Customer):
    for pk in ServiceAddress.objects.filter(customer=customer).values_list("pk", flat=True):
        yield "customers.serviceaddress", str(pk)


def _subscription_objects(customer: Customer):
    for pk in Subscription.objects.filter(customer=customer).values_list("pk", flat=True):
        yield "customers.subscription", str(pk)


# --- erasure ---------------------------------------------------------------------------------------
LIVE = (SubscriptionStatus.PENDING, SubscriptionStatus.ACTIVE, SubscriptionStatus.SUSPENDED)


def erase_subscriptions(ctx: ErasureContext) -> int:
    """Terminate what is still live, from today (the subject asked to leave)."""
    today = tenant_today()
    done = 0
    for sub in Subscription.objects.filter(customer_id=ctx.subject.pk, status__in=LIVE).order_by("pk"):
        terminated_on = max(today, sub.activated_on) if sub.activated_on else today
        services.subscription_terminate(
            subscription=sub,
            terminated_on=terminated_on,
            actor=ctx.actor,
            reason="data-subject erasure",
            source_ip=ctx.source_ip,
        )
        done += 1
    return done


def erase_profile(ctx: ErasureContext) -> int:
    customer = Customer.objects.select_for_update().get(pk=ctx.subject.pk)
    customer.data_key_id = None  # a fresh key seals the pseudonym; compliance shreds the old one
    customer.name = ctx.label
    for field in PROFILE_PII[1:]:
        setattr(customer, field, None)
    customer.tax_exempt_certificate = ""
    customer.tax_exempt_until = None
    customer.marketing_consent, customer.marketing_consent_at = False, ctx.now
    customer.do_not_sell, customer.do_not_sell_at = True, ctx.now
    customer.status = Customer.Status.CLOSED
    customer.save()
    user = customer.portal_user
    if user is not None:
        from rest_framework.authtoken.models import Token

        Token.objects.filter(user=user).delete()
        user.is_active = False
        user.set_unusable_password()
        for attr in ("email", "first_name", "last_name"):
            if hasattr(user, attr):
                setattr(user, attr, "")
        user.save()
    ctx.subject.data_key_id = customer.data_key_id
    return 1


def erase_addresses(ctx: ErasureContext) -> int:
    key = Customer.objects.values_list("data_key_id", flat=True).get(pk=ctx.subject.pk)
    count = 0
    for address in ServiceAddress.objects.select_for_update().filter(customer_id=ctx.subject.pk):
        address.data_key_id = key
        for field in ADDRESS_PII:
            setattr(address, field, None)
        address.save()
        count += 1
    return count


def opt_out(*, subject: Customer, actor, source_ip: str | None = None) -> None:
    services.customer_update(customer=subject, changes={"do_not_sell": True}, actor=actor, source_ip=source_ip)


register(
    Category(
        name="customers.profile",
        title="Customer profile",
        description="Account, name, e-mail, phone, national and tax ids, date of birth, portal login.",
        export=export_profile,
        erase=erase_profile,
        erasure_effect="Name replaced by 'Erased customer #<pseudonym>', every other personal field cleared, "
        "the data key destroyed; portal login deactivated and its tokens deleted.",
        pii_fields=PROFILE_PII,
        audit_objects=_customer_objects,
        erase_order=90,
    ),
    Category(
        name="customers.consents",
        title="Consents",
        description="Marketing consent and the CCPA 'do not sell or share' choice, with when they changed.",
        export=export_consents,
        erasure_effect="Marketing consent withdrawn; 'do not sell or share' set.",
    ),
    Category(
        name="customers.addresses",
        title="Service addresses",
        description="Where service is delivered.",
        export=export_addresses,
        erase=erase_addresses,
        erasure_effect="Street, city and postal code cleared; country/region/locality kept for the taxes of "
        "retained invoices.",
        pii_fields=ADDRESS_PII,
        audit_objects=_address_objects,
        erase_order=91,
    ),
    Category(
        name="customers.subscriptions",
        title="Subscriptions",
        description="Plans subscribed to, their states and plan changes with dates.",
        export=export_subscriptions,
        erase=erase_subscriptions,
        erasure_effect="Live subscriptions terminated; the rows stay (billing history) without identity.",
        audit_objects=_subscription_objects,
        erase_order=10,
    ),
    OptOut(name="customers.do_not_sell", run=opt_out, is_opted_out=lambda customer: customer.do_not_sell),
)
