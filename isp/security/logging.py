"""Personal data kept out of logs and error reports.

`PIIScrubFilter` is installed on every logging handler (isp/settings/base.py): before a record is
written or mailed, e-mail addresses, phone numbers and IBAN-like account numbers in its message
(arguments merged) and in its traceback are masked the way compliance.pii.masking masks them for
staff, and the value of any field named like personal data (`email=...`, `"phone": "..."`) is
replaced. `PIIExceptionReporterFilter` does the same for Django's error reports (the 500 mail and
DEBUG's technical page): settings, request data and local variables with such names are hidden.

This module is loaded by the logging configuration, before the apps: it imports no models.
"""

from __future__ import annotations

import logging
import re

from django.utils.log import AdminEmailHandler
from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

from compliance.pii.masking import mask_email, mask_phone

# Field names whose values are personal data or secrets (customers' CUSTOMER_PII and address
# fields, people's names, credentials). tests/security/test_login_protection.py checks that every
# field of customers.api.pii.CUSTOMER_PII is here.
PII_FIELD_NAMES = (
    "name",
    "first_name",
    "last_name",
    "full_name",
    "email",
    "phone",
    "national_id",
    "tax_id",
    "date_of_birth",
    "street",
    "postal_code",
    "city",
    "address",
    "iban",
    "account_number",
    "card_number",
    "password",
    "secret",
    "token",
)
_FIELD_ALTERNATION = "|".join(sorted(PII_FIELD_NAMES, key=len, reverse=True))
# `email=x`, `email: x`, `'email': 'x'`, `"email": "x y"` (quoted values may contain spaces).
_FIELD_VALUE = re.compile(
    rf"""(?P<key>['"]?\b[\w-]*(?:{_FIELD_ALTERNATION})['"]?\s*[:=]\s*)"""
    r"""(?P<value>'[^']*'|"[^"]*"|[^\s,;&}\])]+)""",
    re.IGNORECASE,
)
EMAIL = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
# E.164 (+ and 7-15 digits, separators allowed) - not bare digit runs, which are ids and amounts.
PHONE = re.compile(r"(?<![\w+])\+\d(?:[ .()-]?\d){6,14}\b")
# Two letters, two check digits, 11-30 more alphanumerics, optionally in groups of four.
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
HIDDEN = "********"


def _mask_iban(match: re.Match) -> str:
    compact = match.group(0).replace(" ", "")
    return compact[:2] + "*" * (len(compact) - 6) + compact[-4:]


def _mask_field(match: re.Match) -> str:
    value = match.group("value")
    quote = value[0] if value[:1] in ("'", '"') else ""
    return f"{match.group('key')}{quote}{HIDDEN}{quote}"


def scrub(text: str) -> str:
    """`text` with personal data masked."""
    text = _FIELD_VALUE.sub(_mask_field, text)
    text = EMAIL.sub(lambda m: mask_email(m.group(0)), text)
    text = IBAN.sub(_mask_iban, text)
    return PHONE.sub(lambda m: mask_phone(re.sub(r"[ .()-]", "", m.group(0))), text)


class PIIScrubFilter(logging.Filter):
    """Masks personal data in a record's message and traceback text. Never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to the handler's own error path
            return True
        record.msg, record.args = scrub(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True


_SENSITIVE_NAME = re.compile(
    rf"API|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|SESSION|CSRF|IBAN|{_FIELD_ALTERNATION}", re.IGNORECASE
)


class PIIExceptionReporterFilter(SafeExceptionReporterFilter):
    """Django's safe filter, also hiding personal data by name: settings, POST fields, query
    parameters and local variables in the traceback."""

    hidden_settings = _SENSITIVE_NAME

    def get_post_parameters(self, request):
        if request is None:
            return {}
        cleansed = super().get_post_parameters(request).copy()
        for name in list(cleansed):
            if _SENSITIVE_NAME.search(name):
                cleansed[name] = self.cleansed_substitute
        return cleansed

    def get_safe_request_meta(self, request):
        meta = super().get_safe_request_meta(request)
        if "QUERY_STRING" in meta:
            meta["QUERY_STRING"] = scrub(str(meta["QUERY_STRING"]))
        return meta

    def get_traceback_frame_variables(self, request, tb_frame):
        variables = super().get_traceback_frame_variables(request, tb_frame)
        return [
            (name, self.cleansed_substitute if _SENSITIVE_NAME.search(name) else value) for name, value in variables
        ]


class PIIExceptionReporter(ExceptionReporter):
    """Django's error report (500 mail, DEBUG page) with what the filter cannot hide by name -
    the exception's message, the URL's query, GET parameters - scrubbed in the rendered text."""

    def get_traceback_html(self):
        return scrub(super().get_traceback_html())

    def get_traceback_text(self):
        return scrub(super().get_traceback_text())


class PIIAdminEmailHandler(AdminEmailHandler):
    """Django's error mail, its subject and body (with the exception's own message, which the
    record filter cannot reach: the mail renders the traceback itself) scrubbed."""

    def send_mail(self, subject, message, *args, **kwargs):
        if kwargs.get("html_message"):
            kwargs["html_message"] = scrub(kwargs["html_message"])
        super().send_mail(scrub(subject), scrub(message), *args, **kwargs)
