"""Static checks over the project's own source (ast): patterns that hurried or generated code
slips in and that must never ship. Used by each app's `test_code_safety.py`."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SQL_SINKS = {"execute", "executemany", "raw", "extra", "RawSQL"}
# Views that may skip CSRF, with the reason (none yet).
CSRF_EXEMPT_ALLOWED: dict[str, str] = {}


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


def check_source(source: str, path: str = "<string>") -> list[Finding]:
    findings = []
    tree = ast.parse(source, filename=path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = _call_name(node)
            if name in SQL_SINKS and node.args and _is_formatted_string(node.args[0]):
                findings.append(Finding(path, node.lineno, f"SQL built by string formatting in {name}()"))
            if name in {"eval", "exec"} and isinstance(node.func, ast.Name):
                findings.append(Finding(path, node.lineno, f"{name}() call"))
            for keyword in node.keywords:
                if keyword.arg == "shell" and isinstance(keyword.value, ast.Constant) and keyword.value.value:
                    findings.append(Finding(path, node.lineno, "subprocess with shell=True"))
            if name in {"loads", "load", "Unpickler"} and isinstance(node.func, ast.Attribute):
                owner = node.func.value
                if isinstance(owner, ast.Name) and owner.id in {"pickle", "cPickle", "dill", "marshal"}:
                    findings.append(Finding(path, node.lineno, f"unpickling with {owner.id}.{name}()"))
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = {alias.name for alias in node.names}
            module = getattr(node, "module", None) or ""
            if "csrf_exempt" in names and module == "django.views.decorators.csrf" and path not in CSRF_EXEMPT_ALLOWED:
                findings.append(Finding(path, node.lineno, "csrf_exempt outside the declared list"))
    return findings


def python_files(app: str) -> list[Path]:
    return sorted(p for p in (REPO / app).rglob("*.py") if "migrations" not in p.parts)


def check_app(app: str) -> list[Finding]:
    findings = []
    for path in python_files(app):
        findings.extend(check_source(path.read_text(), str(path.relative_to(REPO))))
    return findings
