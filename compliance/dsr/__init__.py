"""Data-subject rights: requests (export, erasure, CCPA opt-out), the personal-data registry
through which every app declares what it holds about a customer, retention purges.

Kept import-light: `compliance.models` may import from here, so no module of this package
imports models at import time except the ones that need them (services, export, erasure)."""
