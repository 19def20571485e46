"""Static checks over the project's own source (ast): patterns that hurried or generated code
slips in and that must never ship. Used by each app's `test_code_safety.py` and by
tests/security/test_code_safety.py (which also scans the files no app test covers, the
committed files for credentials, and runs bandit)."""

from __future__ import annotations

import ast
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SQL_SINKS = {"execute", "executemany", "raw", "extra", "RawSQL"}
# Views that may skip CSRF, with the reason (none yet).
CSRF_EXEMPT_ALLOWED: dict[str, str] = {}
# Modules that may unpickle/unmarshal/load YAML unsafely, with the reason (none: nothing the
# project reads is trusted enough; Celery is configured for JSON only).
UNPICKLE_TRUSTED: dict[str, str] = {}
_UNPICKLERS = {"pickle", "cPickle", "_pickle", "dill", "marshal", "shelve", "jsonpickle"}
_UNPICKLE_CALLS = {"loads", "load", "Unpickler", "open", "decode"}
_SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader"}


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    rule: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.rule}"


def _is_formatted_string(node: ast.AST) -> bool:
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(part, ast.FormattedValue) for part in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod | ast.Add):
        return _is_formatted_string(node.left) or isinstance(node.left, ast.Constant | ast.JoinedStr)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        return isinstance(node.func.value, ast.Constant)
    return False


def _call_name(node: ast.Call) -> str:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return ""


def _formatted_names(scope: ast.AST) -> set[str]:
    """Names that `scope` assigns a string built by formatting (`q = f"..."`, `q = "..." % x`)."""
    names = set()
    for node in ast.walk(scope):
        if isinstance(node, ast.Assign) and _is_formatted_string(node.value):
            names.update(target.id for target in node.targets if isinstance(target, ast.Name))
        elif (
            isinstance(node, ast.AugAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(node.op, ast.Add)
            and isinstance(node.value, ast.JoinedStr | ast.Name | ast.BinOp | ast.Call)
        ):
            names.add(node.target.id)  # q += something: built piecewise
    return names


def _sql_findings(tree: ast.AST, path: str) -> list[Finding]:
    findings = {}
    scopes = [tree, *(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef))]
    for scope in scopes:
        formatted = _formatted_names(scope)
        for node in ast.walk(scope):
            if not (isinstance(node, ast.Call) and _call_name(node) in SQL_SINKS and node.args):
                continue
            name, first = _call_name(node), node.args[0]
            if _is_formatted_string(first):
                findings[node.lineno] = Finding(path, node.lineno, f"SQL built by string formatting in {name}()")
            elif isinstance(first, ast.Name) and first.id in formatted and node.lineno not in findings:
                findings[node.lineno] = Finding(
                    path, node.lineno, f"SQL built by string formatting in {name}() (through `{first.id}`)"
                )
    return list(findings.values())


def _yaml_unsafe(node: ast.Call) -> bool:
    func = node.func
    if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "yaml"):
        return False
    if func.attr in {"unsafe_load", "unsafe_load_all"}:
        return True
    if func.attr not in {"load", "load_all"}:
        return False
    loader = next((k.value for k in node.keywords if k.arg == "Loader"), node.args[1] if len(node.args) > 1 else None)
    loader_name = loader.attr if isinstance(loader, ast.Attribute) else getattr(loader, "id", None)
    return loader_name not in _SAFE_YAML_LOADERS


def check_source(source: str, path: str = "<string>") -> list[Finding]:
    tree = ast.parse(source, filename=path)
    findings = _sql_findings(tree, path)
    unpickle_ok = path in UNPICKLE_TRUSTED
    csrf_ok = path in CSRF_EXEMPT_ALLOWED
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = _call_name(node)
            if name in {"eval", "exec"} and isinstance(node.func, ast.Name):
                findings.append(Finding(path, node.lineno, f"{name}() call"))
            for keyword in node.keywords:
                if keyword.arg == "shell" and isinstance(keyword.value, ast.Constant) and keyword.value.value:
                    findings.append(Finding(path, node.lineno, "subprocess with shell=True"))
            if isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name):
                owner = node.func.value.id
                if owner == "os" and name in {"system", "popen"}:
                    findings.append(Finding(path, node.lineno, f"shell command through os.{name}()"))
                if owner in _UNPICKLERS and name in _UNPICKLE_CALLS and not unpickle_ok:
                    findings.append(Finding(path, node.lineno, f"unpickling with {owner}.{name}()"))
            if _yaml_unsafe(node) and not unpickle_ok:
                findings.append(Finding(path, node.lineno, "unsafe YAML load (use yaml.safe_load)"))
        if isinstance(node, ast.ImportFrom) and (node.module or "") in _UNPICKLERS and not unpickle_ok:
            imported = {alias.name for alias in node.names} & _UNPICKLE_CALLS
            if imported:
                findings.append(Finding(path, node.lineno, f"unpickling with {node.module}.{sorted(imported)[0]}"))
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = {alias.name for alias in node.names}
            module = getattr(node, "module", None) or ""
            if "csrf_exempt" in names and module == "django.views.decorators.csrf" and not csrf_ok:
                findings.append(Finding(path, node.lineno, "csrf_exempt outside the declared list"))
        if isinstance(node, ast.Attribute) and node.attr == "csrf_exempt" and not csrf_ok:
            findings.append(Finding(path, node.lineno, "csrf_exempt outside the declared list"))
    return sorted(set(findings), key=lambda f: (f.line, f.rule))


def python_files(app: str) -> list[Path]:
    return sorted(p for p in (REPO / app).rglob("*.py") if "migrations" not in p.parts)


def check_app(app: str) -> list[Finding]:
    findings = []
    for path in python_files(app):
        findings.extend(check_source(path.read_text(), str(path.relative_to(REPO))))
    return findings


# --- settings that production loads ---------------------------------------------------------------
def check_settings_source(source: str, path: str = "<string>") -> list[Finding]:
    """A production settings module never hard-codes DEBUG on, a secret key, or any host."""
    findings = []
    for node in ast.walk(ast.parse(source, filename=path)):
        if not isinstance(node, ast.Assign):
            continue
        targets = {t.id for t in node.targets if isinstance(t, ast.Name)}
        value = node.value
        if "DEBUG" in targets and not (isinstance(value, ast.Constant) and value.value is False):
            from_env = isinstance(value, ast.Call) and _call_name(value) == "bool"  # env.bool(...)
            defaults = [k.value for k in getattr(value, "keywords", []) if k.arg == "default"]
            default_off = all(isinstance(d, ast.Constant) and d.value is False for d in defaults)
            if not (from_env and default_off):
                findings.append(Finding(path, node.lineno, "DEBUG not read from the environment (default off)"))
        if "SECRET_KEY" in targets and isinstance(value, ast.Constant):
            findings.append(Finding(path, node.lineno, "SECRET_KEY hard-coded"))
        if "ALLOWED_HOSTS" in targets and "'*'" in ast.unparse(value).replace('"', "'"):
            findings.append(Finding(path, node.lineno, "ALLOWED_HOSTS allows any host"))
    return findings


# --- credentials committed to the repository -----------------------------------------------------
SECRET_PATTERNS = {
    "private key": re.compile(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----"),
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "AWS secret access key": re.compile(r"aws_secret_access_key\s*[=:]\s*['\"]?[A-Za-z0-9/+=]{40}"),
    "credential literal": re.compile(
        r"(?i)\b[\w-]*(?:password|passwd|secret|api_key|apikey|access_token)[\w-]*['\"]?\s*(?:=|:)\s*"
        r"['\"](?!\$\{)[^'\"\s]{6,}['\"]"
    ),
}
# A credential-looking literal is allowed on a line that says why: a DEV-ONLY default, a build-only
# dummy, or a justified `noqa: S105/S106` (ruff's hard-coded-password rules).
CREDENTIAL_MARKERS = ("DEV-ONLY", "BUILD-ONLY", "noqa: S105", "noqa: S106", "noqa: S107", "not a secret")
# Test code creates throwaway accounts with literal passwords on purpose.
CREDENTIAL_LITERALS_ALLOWED_UNDER = ("tests/",)


def scan_text_for_secrets(text: str, path: str) -> list[Finding]:
    findings = []
    lines = text.splitlines()
    for number, line in enumerate(lines, 1):
        for rule, pattern in SECRET_PATTERNS.items():
            if not pattern.search(line):
                continue
            if rule == "credential literal":
                context = line + (lines[number - 2] if number > 1 else "")
                if path.startswith(CREDENTIAL_LITERALS_ALLOWED_UNDER) or any(m in context for m in CREDENTIAL_MARKERS):
                    continue
            findings.append(Finding(path, number, rule))
    return findings


def repository_files() -> list[str]:
    """Files git tracks, plus new files not ignored (so a secret is caught before its commit)."""
    listed = subprocess.run(  # noqa: S603 - fixed argv, no shell
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],  # noqa: S607 - git from PATH
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return sorted({p for p in listed if (REPO / p).is_file()})


def scan_repository_for_secrets() -> list[Finding]:
    findings = []
    for path in repository_files():
        try:
            text = (REPO / path).read_text()
        except UnicodeDecodeError:
            continue  # binary
        findings.extend(scan_text_for_secrets(text, path))
    return findings
