"""Tenant admin (Django's default `admin.site`, served on tenant hosts) for customers, service
addresses, plans and subscriptions.

- Personal data follows `customers.api.pii`: in clear for staff with `customers.reveal_pii`, and
  every changelist page or change form that shows it in clear records `pii.revealed` audit events
  (one per object shown, field names only); masked for every other role.
- Every save goes through `customers.services`, so it is validated and audited exactly as through
  the API. The service runs while the form is validated (see `ServiceForm`), inside the admin's
  transaction, so a refusal is shown on the form and writes nothing.
- Nothing is deleted here: customers are erased by the compliance workflow, plans are archived,
  subscriptions are terminated.
"""

from __future__ import annotations

import datetime
import re
import zoneinfo

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone

from compliance.audit import Actor, client_ip

from . import services
from .api.pii import (
    ADDRESS_PII,
    CUSTOMER_PII,
    PIIMode,
    can_reveal,
    pii_mode_for,
    prepare,
    record_reveal,
    shown_value,
)
from .models import Customer, Plan, ServiceAddress, Subscription

ACCOUNT_CODE = re.compile(r"[Cc]?0*(\d{1,9})")


def _audit_context(request) -> dict:
    return {"actor": Actor.from_user(request.user), "source_ip": client_ip(request)}


def tenant_today(request) -> datetime.date:
    """Today in the tenant's time zone (dates that billing reads are the tenant's dates)."""
    tenant = getattr(request, "tenant", None)
    zone = zoneinfo.ZoneInfo(tenant.time_zone) if tenant is not None else None
    return timezone.localdate(timezone=zone)


# --- saving through services -------------------------------------------------------------------
class ServiceForm(forms.ModelForm):
    """A model form whose save is a service call.

    The service runs in `clean()`, inside the transaction of the admin's change form: its
    ValidationErrors land on the form's fields, and a refused save writes nothing. The model
    instance is never validated or saved by the form itself."""

    saved: models.Model | None = None

    def persist(self, cleaned_data: dict) -> models.Model | None:  # bound per request by ServiceAdmin
        raise NotImplementedError

    def _post_clean(self):
        """No model validation here: the service validates."""

    def clean(self):
        cleaned_data = super().clean()
        if self.errors:
            return cleaned_data
        try:
            with transaction.atomic():
                self.saved = self.persist(cleaned_data)
        except ValidationError as exc:
            self._add_service_errors(exc)
        return cleaned_data

    def _add_service_errors(self, exc: ValidationError) -> None:
        if not hasattr(exc, "error_dict"):
            self.add_error(None, exc.messages)
            return
        for field, field_messages in exc.message_dict.items():
            if field in self.fields:
                self.add_error(field, field_messages)
            else:
                self.add_error(None, [f"{field}: {message}" for message in field_messages])


class ServiceAdmin(admin.ModelAdmin):
    """Saves through `persist` (a service call); never deletes."""

    form = ServiceForm

    def persist(self, request, form: ServiceForm, cleaned_data: dict, *, obj) -> models.Model | None:
        raise NotImplementedError

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change=change, **kwargs)
        model_admin = self

        def persist(form, cleaned_data):
            return model_admin.persist(request, form, cleaned_data, obj=obj)

        return type(form_class.__name__, (form_class,), {"persist": persist})

    def save_model(self, request, obj, form, change):
        saved = form.saved
        if saved is not None and not change:
            # The admin logs and links the new object through `obj`: give it the saved row's values.
            for field in obj._meta.concrete_fields:
                obj.__dict__[field.attname] = saved.__dict__.get(field.attname)
            obj._state.adding = False

    def save_related(self, request, form, formsets, change):
        """The services write everything; nothing related is edited here."""

    def has_delete_permission(self, request, obj=None):
        return False


# --- personal data -----------------------------------------------------------------------------
def pii_columns(field: str, maskers: dict, label: str) -> tuple:
    """Two admin display methods for one PII field: in clear and masked."""
    masker = maskers[field]

    @admin.display(description=label)
    def clear(self, obj):
        return shown_value(getattr(obj, field), mode=PIIMode.CLEAR, masker=masker)

    @admin.display(description=f"{label} (masked)")
    def masked(self, obj):
        return shown_value(getattr(obj, field), mode=PIIMode.MASKED, masker=masker)

    return clear, masked


class PIIAdminMixin:
    """Changelist columns and read-only fields named after a PII field show it in clear or masked
    per the user's role; clear pages and forms are audited."""

    pii_fields: dict

    def pii_display(self, request, names) -> list[str]:
        prefix = "clear_" if can_reveal(request.user) else "masked_"
        return [prefix + name if name in self.pii_fields else name for name in names]

    def get_list_display(self, request):
        return self.pii_display(request, super().get_list_display(request))

    def changelist_view(self, request, extra_context=None):
        with transaction.atomic():
            response = super().changelist_view(request, extra_context)
            changelist = (getattr(response, "context_data", None) or {}).get("cl")
            if changelist is not None:
                mode = pii_mode_for(request.user)
                shown = prepare(changelist.result_list, mode)  # one key-store query for the page
                shown_fields = [name for name in self.list_display if name in self.pii_fields]
                record_reveal(mode=mode, objects=shown, fields=shown_fields, **_audit_context(request))
        return response

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.pk is not None and can_reveal(request.user):
            with transaction.atomic():
                record_reveal(mode=PIIMode.CLEAR, objects=[obj], fields=self.pii_fields, **_audit_context(request))
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)


# --- customers ---------------------------------------------------------------------------------
CUSTOMER_EDITABLE = ("kind", "billing_day", "tax_exempt_certificate", "tax_exempt_until")
CONSENT_FIELDS = ("marketing_consent", "marketing_consent_at", "do_not_sell", "do_not_sell_at")


class CustomerForm(ServiceForm):
    class Meta:
        model = Customer
        fields = (*CUSTOMER_PII, *CUSTOMER_EDITABLE, "marketing_consent", "do_not_sell")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("name", "email"):
            if name in self.fields:
                self.fields[name].required = True
        for name in CUSTOMER_PII:
            if name in self.fields and name != "date_of_birth":
                self.fields[name].widget.attrs.setdefault("class", "vTextField")


@admin.register(Customer)
class CustomerAdmin(PIIAdminMixin, ServiceAdmin):
    form = CustomerForm
    pii_fields = CUSTOMER_PII
    list_display = ("account_code", "name", "email", "kind", "status", "created_at")
    list_filter = ("status", "kind", "marketing_consent", "do_not_sell")
    ordering = ("account_number",)
    # Personal data is encrypted: the search matches an exact e-mail address (blind index) or an
    # account code, never a fragment (see get_search_results).
    search_fields = ("account_number",)
    search_help_text = "An exact e-mail address, or an account code (C000123)."

    clear_name, masked_name = pii_columns("name", CUSTOMER_PII, "name")
    clear_email, masked_email = pii_columns("email", CUSTOMER_PII, "e-mail")
    clear_phone, masked_phone = pii_columns("phone", CUSTOMER_PII, "phone")
    clear_national_id, masked_national_id = pii_columns("national_id", CUSTOMER_PII, "national ID")
    clear_tax_id, masked_tax_id = pii_columns("tax_id", CUSTOMER_PII, "tax ID")
    clear_date_of_birth, masked_date_of_birth = pii_columns("date_of_birth", CUSTOMER_PII, "date of birth")

    @admin.display(description="account", ordering="account_number")
    def account_code(self, obj):
        return obj.account_code

    def get_fieldsets(self, request, obj=None):
        if obj is None:  # a new customer: personal data is write-only for whoever may add customers
            return [
                ("Personal data", {"fields": list(CUSTOMER_PII)}),
                ("Account", {"fields": list(CUSTOMER_EDITABLE)}),
                ("Consent", {"fields": ["marketing_consent", "do_not_sell"]}),
            ]
        personal = list(CUSTOMER_PII) if can_reveal(request.user) else self.pii_display(request, CUSTOMER_PII)
        return [
            (None, {"fields": ["account_code", "status"]}),
            ("Personal data", {"fields": personal}),
            ("Account", {"fields": list(CUSTOMER_EDITABLE)}),
            ("Consent", {"fields": list(CONSENT_FIELDS)}),
            ("Record", {"fields": ["portal_user", "created_at", "updated_at"]}),
        ]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        readonly = ["account_code", "status", "marketing_consent_at", "do_not_sell_at", "portal_user"]
        readonly += ["created_at", "updated_at"]
        if not can_reveal(request.user):
            readonly += self.pii_display(request, CUSTOMER_PII)
        return readonly

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        if "@" in term:
            index = Customer._meta.get_field("email_index").lookup_value(term)
            return queryset.filter(email_index=index), False
        code = ACCOUNT_CODE.fullmatch(term)
        return (queryset.filter(account_number=int(code.group(1))) if code else queryset.none()), False

    def persist(self, request, form, cleaned_data, *, obj):
        if obj is None:
            return services.customer_create(
                **{name: cleaned_data[name] for name in form.fields}, **_audit_context(request)
            )
        changes = {name: cleaned_data[name] for name in form.changed_data}
        return services.customer_update(customer=obj, changes=changes, **_audit_context(request))


# --- service addresses -------------------------------------------------------------------------
ADDRESS_FIELDS = ("customer", *ADDRESS_PII, "country", "region", "locality")


class ServiceAddressForm(ServiceForm):
    class Meta:
        model = ServiceAddress
        fields = ADDRESS_FIELDS

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ADDRESS_PII:
            if name in self.fields:
                self.fields[name].required = True
                self.fields[name].widget.attrs.setdefault("class", "vTextField")


@admin.register(ServiceAddress)
class ServiceAddressAdmin(PIIAdminMixin, ServiceAdmin):
    """Addresses are added here (through the service) and then read-only: there is no address
    update service, and personal data is never edited in place."""

    form = ServiceAddressForm
    pii_fields = ADDRESS_PII
    list_display = ("id", "customer", "street", "city", "postal_code", "country", "region", "locality")
    list_select_related = ("customer",)
    list_filter = ("country",)
    raw_id_fields = ("customer",)

    clear_street, masked_street = pii_columns("street", ADDRESS_PII, "street")
    clear_city, masked_city = pii_columns("city", ADDRESS_PII, "city")
    clear_postal_code, masked_postal_code = pii_columns("postal_code", ADDRESS_PII, "postal code")

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [(None, {"fields": list(ADDRESS_FIELDS)})]
        return [(None, {"fields": [*self.pii_display(request, ADDRESS_FIELDS), "created_at"]})]

    def has_change_permission(self, request, obj=None):
        return False

    def persist(self, request, form, cleaned_data, *, obj):
        return services.service_address_create(
            **{name: cleaned_data[name] for name in ADDRESS_FIELDS}, **_audit_context(request)
        )


# --- plans -------------------------------------------------------------------------------------
PLAN_FORM_FIELDS = tuple(field.name for field in Plan._meta.fields if field.name in services.PLAN_FIELDS)


class PlanForm(ServiceForm):
    class Meta:
        model = Plan
        fields = PLAN_FORM_FIELDS


@admin.register(Plan)
class PlanAdmin(ServiceAdmin):
    form = PlanForm
    list_display = ("code", "name", "monthly_price", "download_kbps", "upload_kbps", "category", "status")
    list_filter = ("status", "category")
    search_fields = ("code", "name")
    actions = ["archive_selected"]

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else ("code", "status", "created_at")

    def get_fields(self, request, obj=None):
        return list(PLAN_FORM_FIELDS) if obj is None else [*PLAN_FORM_FIELDS, "status", "created_at"]

    def persist(self, request, form, cleaned_data, *, obj):
        if obj is None:
            return services.plan_create(
                **{name: cleaned_data[name] for name in PLAN_FORM_FIELDS}, **_audit_context(request)
            )
        changes = {name: cleaned_data[name] for name in form.changed_data}
        return services.plan_update(plan=obj, changes=changes, **_audit_context(request))

    @admin.action(description="Archive selected plans (no new subscriptions)", permissions=["change"])
    def archive_selected(self, request, queryset):
        for plan in queryset:
            services.plan_archive(plan=plan, **_audit_context(request))
        self.message_user(request, f"{len(queryset)} plan(s) archived.", level=messages.SUCCESS)


# --- subscriptions -----------------------------------------------------------------------------
class SubscriptionForm(ServiceForm):
    class Meta:
        model = Subscription
        fields = ("customer", "plan", "service_address")


@admin.register(Subscription)
class SubscriptionAdmin(ServiceAdmin):
    """Subscriptions are created pending and move through their lifecycle by the actions below
    (each a service call, effective today in the tenant's time zone); their fields are read-only."""

    form = SubscriptionForm
    list_display = ("id", "customer", "plan", "status", "activated_on", "terminated_on", "created_at")
    list_select_related = ("customer", "plan")
    list_filter = ("status", "plan")
    raw_id_fields = ("customer", "service_address")
    actions = ["activate_selected", "suspend_selected", "reactivate_selected", "terminate_selected"]
    STATE_FIELDS = ("status", "activated_on", "terminated_on", "created_at", "updated_at")

    def get_fields(self, request, obj=None):
        fields = list(SubscriptionForm.Meta.fields)
        return fields if obj is None else [*fields, *self.STATE_FIELDS]

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.get_fields(request, obj)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "plan":
            kwargs["queryset"] = Plan.objects.filter(status=Plan.Status.ACTIVE)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def persist(self, request, form, cleaned_data, *, obj):
        if obj is not None:
            return obj  # nothing is editable: state changes are actions
        return services.subscription_create(
            **{name: cleaned_data[name] for name in SubscriptionForm.Meta.fields}, **_audit_context(request)
        )

    def _apply(self, request, queryset, done_message: str, call) -> None:
        done = 0
        for subscription in queryset:
            try:
                call(subscription, **_audit_context(request))
            except ValidationError as exc:
                self.message_user(request, f"{subscription}: {'; '.join(exc.messages)}", level=messages.ERROR)
            else:
                done += 1
        if done:
            self.message_user(request, f"{done} subscription(s) {done_message}.", level=messages.SUCCESS)

    @admin.action(description="Activate selected subscriptions (from today)", permissions=["change"])
    def activate_selected(self, request, queryset):
        today = tenant_today(request)
        self._apply(
            request,
            queryset,
            f"activated from {today}",
            lambda sub, **ctx: services.subscription_activate(subscription=sub, activated_on=today, **ctx),
        )

    @admin.action(description="Suspend selected subscriptions (from today)", permissions=["change"])
    def suspend_selected(self, request, queryset):
        today = tenant_today(request)
        self._apply(
            request,
            queryset,
            f"suspended from {today}",
            lambda sub, **ctx: services.subscription_suspend(
                subscription=sub, effective_on=today, reason="Suspended by staff in the admin.", **ctx
            ),
        )

    @admin.action(description="Reactivate selected subscriptions (from today)", permissions=["change"])
    def reactivate_selected(self, request, queryset):
        today = tenant_today(request)
        self._apply(
            request,
            queryset,
            f"reactivated from {today}",
            lambda sub, **ctx: services.subscription_reactivate(subscription=sub, effective_on=today, **ctx),
        )

    @admin.action(description="Terminate selected subscriptions (from today)", permissions=["change"])
    def terminate_selected(self, request, queryset):
        today = tenant_today(request)
        self._apply(
            request,
            queryset,
            f"terminated from {today}",
            lambda sub, **ctx: services.subscription_terminate(
                subscription=sub, terminated_on=today, reason="Terminated by staff in the admin.", **ctx
            ),
        )
