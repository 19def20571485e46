"""What the browser tests need around the browser: the project served over real HTTP on 127.0.0.1,
Debian's chromium, the code an authenticator app would show, and screenshots.

The server is the project's own WSGI application (plus the apps' static files, as `runserver`
serves them) in a thread of the test process, on a port the OS chooses. Each request runs on a
connection of its own in autocommit, so the pages see and write committed rows, exactly as
gunicorn would; connections are closed when the request (or its keep-alive socket) ends.
Tenants are routed by host name: `http://<slug>.localhost:<port>/admin/` (chromium resolves every
`*.localhost` to the loopback address by itself)."""

from __future__ import annotations

import base64
import contextlib
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler, get_internal_wsgi_application

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "browser"


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        """Every request would otherwise be a line on stderr; failures still reach the test as pages."""


class _Server(ThreadedWSGIServer):
    def _close_connections(self):
        """The Django connections (as Django's own live server does) and this thread's key-store
        connection, opened by any page that decrypts personal data."""
        from compliance.pii.keystore import get_keystore

        super()._close_connections()
        get_keystore().close()


class CommittedTenant:
    """A throwaway tenant (`network.bench_support.throwaway_tenant`), and a database connection of
    its own to build and read it: a thread, in autocommit, so everything is committed for the
    server's requests and the Celery worker. (The test's own thread cannot use the ORM while
    Playwright's sync API runs its event loop there.) `close()` removes the tenant: schema,
    database role, tenant and domain rows, RADIUS rows, data keys."""

    def __init__(self, prefix: str):
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{prefix}-db")
        self._stack = contextlib.ExitStack()
        self.tenant = self._thread.submit(self._create, prefix).result()

    def _create(self, prefix: str):
        from network.bench_support import throwaway_tenant

        tenant, _actor = self._stack.enter_context(throwaway_tenant(prefix, say=lambda _line: None))
        return tenant

    def run(self, job: Callable[[], object]):
        """`job()` on the tenant's connection, in the tenant's schema; its result."""

        def in_tenant():
            from django_tenants.utils import tenant_context

            with tenant_context(self.tenant):
                return job()

        return self._thread.submit(in_tenant).result()

    def close(self) -> None:
        def remove():
            from django.db import connection

            from compliance.pii.keystore import get_keystore

            try:
                self._stack.close()
            finally:
                get_keystore().close()
                connection.close()

        try:
            self._thread.submit(remove).result()
        finally:
            self._thread.shutdown()


@dataclass(frozen=True)
class Site:
    port: int

    def url(self, tenant, path: str = "/") -> str:
        return f"http://{tenant.primary_host}:{self.port}{path}"


@contextlib.contextmanager
def served_site() -> Iterator[Site]:
    """`with served_site() as site:` - the application on 127.0.0.1:<free port> until the block ends."""
    server = _Server(("127.0.0.1", 0), _QuietHandler, allow_reuse_address=False)
    server.set_app(StaticFilesHandler(get_internal_wsgi_application()))
    thread = threading.Thread(target=server.serve_forever, name="browser-site", daemon=True)
    thread.start()
    try:
        yield Site(port=server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextlib.contextmanager
def chromium() -> Iterator[object]:
    """Debian's chromium driven by Playwright (no browser download), headless."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests drive Debian's chromium, which `make setup` installs "
            "(scripts/setup.sh); Playwright's own browser download is not used.",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


_FETCH = """async ({url, form}) => {
    const init = {credentials: "same-origin", redirect: "manual"};
    if (form) {
        init.method = "POST";
        init.body = new URLSearchParams(form);
    }
    const response = await fetch(url, init);
    const bytes = new Uint8Array(await response.arrayBuffer());
    let binary = "";
    for (let i = 0; i < bytes.length; i += 0x8000) {
        binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    }
    return {status: response.status, type: response.headers.get("content-type") || "", body: btoa(binary)};
}"""


@dataclass(frozen=True)
class Fetched:
    status: int  # 0: a redirect (not followed)
    content_type: str
    body: bytes


def page_fetch(page, url: str, *, form: dict[str, str] | None = None) -> Fetched:
    """A GET (or, with `form`, a form POST) sent by the page's own JavaScript: same origin, with
    the page's session cookie, what anyone could type into the browser's console. (Playwright's
    `page.request` resolves host names outside the browser, where `*.localhost` does not resolve.)"""
    answer = page.evaluate(_FETCH, {"url": url, "form": form})
    return Fetched(answer["status"], answer["type"], base64.b64decode(answer["body"]))


def authenticator_code(secret_b32: str) -> str:
    """The 6-digit code an authenticator app shows now for a base32 secret (RFC 6238, 30 s)."""
    from django_otp.oath import totp

    return f"{totp(base64.b32decode(secret_b32)):06d}"


class Screenshots:
    """`shots("customer-added")` saves the whole page as test-artifacts/browser/<test>-<step>.png."""

    def __init__(self, page, test_name: str):
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page, self.prefix = page, test_name
        self.saved: list[Path] = []

    def __call__(self, step: str) -> Path:
        path = ARTIFACTS / f"{self.prefix}-{step}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.saved.append(path)
        return path

    def pdf(self, step: str, data: bytes) -> Path:
        """Keep a PDF (<test>-<step>.pdf) and its first page as an image (<test>-<step>.png)."""
        document = ARTIFACTS / f"{self.prefix}-{step}.pdf"
        document.write_bytes(data)
        if shutil.which("pdftoppm") is None:
            pytest.fail("pdftoppm (poppler-utils) is missing: scripts/setup.sh installs it", pytrace=False)
        image = ARTIFACTS / f"{self.prefix}-{step}"
        subprocess.run(["pdftoppm", "-png", "-r", "80", "-singlefile", str(document), str(image)], check=True)
        self.saved.append(image.with_suffix(".png"))
        return image.with_suffix(".png")
