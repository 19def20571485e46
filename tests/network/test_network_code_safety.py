"""ai_safety: the network app has none of the forbidden patterns (SQL by string formatting,
shell=True, eval/exec, unpickling, csrf_exempt). The `radius` functions build their per-tenant
SQL with format('%I') inside PostgreSQL; Python composes identifiers with psycopg.sql."""

import pytest

from tests.code_safety import check_app

pytestmark = [pytest.mark.ai_safety, pytest.mark.contract]


def test_no_forbidden_patterns_in_the_network_source():
    findings = check_app("network")
    assert not findings, "\n".join(map(str, findings))


def test_radius_functions_quote_the_tenant_as_an_identifier():
    """Every EXECUTE in the radius schema formats the tenant with %I (identifier quoting), never
    %s or concatenation: a NAS shortname cannot turn into SQL."""
    import re

    from network.radius.db import INSTALL_SQL

    code = re.sub(r"--[^\n]*", "", INSTALL_SQL)  # comments may mention EXECUTE
    executes = [m.start() for m in re.finditer(r"\bEXECUTE\b", code)]
    assert len(executes) >= 4
    for at in executes:
        call = re.split(r"\bUSING\b|\bLOOP\b|;", code[at:])[0]
        assert call.startswith("EXECUTE format("), call  # never EXECUTE of a concatenated string
        assert "%I" in call or "%1$I" in call, call
        assert "%s" not in call, call
        assert "||" not in call, call
