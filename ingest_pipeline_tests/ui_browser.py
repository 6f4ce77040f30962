"""A page of the Dagster UI rendered in a real headless browser: its visible text, console errors
and the error banners it shows.

Playwright (from PyPI) drives Debian's Chromium (/usr/bin/chromium, installed by .ci/run): no
browser download. The Dagster UI is a React single-page app, so a page counts as rendered when an
expected text appears in it (an asset key, a sensor name), not when the document has loaded.

What Dagster 1.13's UI shows when something is wrong (read off its bundled webapp):
- a red toast "Unexpected GraphQL error" (the Apollo error link), shown for a few seconds only, so
  an init script records every error toast the moment it is added to the page;
- "Application error: a client-side exception has occurred" (Next.js, when a component throws);
- "Something went wrong" (the React error boundary);
- a Python error panel (the PythonErrorInfo component: message and stack trace);
- NonIdealState titles for failed queries: "An unexpected error occurred", "An error occurred",
  "Python error", "No run found", "Error loading code location";
- "View error" / "View errors (N)" beside a failed code location, tick or sensor.
A code location that fails to load is silent on /automation and /asset-groups (they show "No
automations" / "Empty graph"): only the deployment page says "Failed" and "View error". That is
why a check should also wait for a text that only a healthy page shows.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ingest_pipeline.cli.dev import stop_group, wait_for_webserver

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = "/usr/bin/chromium"

# As root on this machine's closed network (see the machine notes): no sandbox, no GPU, no QUIC,
# and none of Chromium's own background connections.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

# Phrases of the UI's error states, matched case-sensitively in the page's visible text.
ERROR_TEXTS = (
    "Unexpected GraphQL error",
    "Application error: a client-side exception has occurred",
    "Something went wrong",
    "An unexpected error occurred",
    "An error occurred",
    "Python error",
    "No run found",
    "Error loading code location",
    "failed to load due to errors",
    "code location failed to load",
    "code locations failed to load",
    "View error",
)

# Before the app's own scripts run: dismiss the "Join the Dagster community" dialog, which covers
# every page on a fresh instance served from localhost, and record every error toast (a red toast
# with the "error" icon) as it appears, since toasts leave the page after a few seconds.
_INIT_SCRIPT = """
(() => {
  try { window.localStorage.setItem('communityNux', JSON.stringify('1')); } catch (e) {}
  window.__uiErrorToasts = [];
  const seen = new WeakSet();
  const scan = () => {
    for (const el of document.querySelectorAll('[class*="Toaster_toastContainer"]')) {
      if (seen.has(el) || !el.querySelector('[role="img"][aria-label="error"]')) continue;
      seen.add(el);
      window.__uiErrorToasts.push((el.textContent || '').trim());
    }
  };
  new MutationObserver(scan).observe(document, {childList: true, subtree: true});
})();
"""

# The page's state in one call: visible text, recorded error toasts, Python error panels shown.
_READ_PAGE = """
() => ({
  text: document.body ? document.body.innerText : '',
  toasts: window.__uiErrorToasts || [],
  pythonErrors: Array.from(document.querySelectorAll('[class*="PythonErrorInfo_errorHeader"]'))
    .filter((el) => el.offsetParent !== null)
    .map((el) => (el.textContent || '').trim()),
})
"""


@dataclass
class PageReport:
    """What a person would have seen on one page, and what the detector made of it."""

    url: str  # where the page ended up (the UI redirects some paths)
    text: str  # the visible text of the page
    screenshot: Path
    console_errors: list[str] = field(default_factory=list)  # console.error and uncaught errors
    error_banners: list[str] = field(default_factory=list)  # each error state found, described
    wait_for_text: str | None = None
    rendered: bool = False  # wait_for_text appeared (or, without one, the text settled)
    seconds: float = 0.0

    @property
    def has_error_banner(self) -> bool:
        return bool(self.error_banners)

    def summary(self, chars: int = 600) -> str:
        """For an assertion message: the verdict, the errors, and the start of the page text."""
        return (
            f"{self.url}: rendered={self.rendered} (waited for {self.wait_for_text!r}), "
            f"error banners={self.error_banners}, console errors={self.console_errors[:5]}, "
            f"screenshot={self.screenshot}\n--- text ---\n{self.text[:chars]}"
        )


def error_texts_in(text: str) -> list[str]:
    """The known error phrases that occur in a page's visible text."""
    return [phrase for phrase in ERROR_TEXTS if phrase in text]


def render_page(
    base_url: str,
    path: str,
    screenshot: Path,
    wait_for_text: str | None = None,
    timeout_s: float = 60,
    *,
    settle_s: float = 1.5,
    setup: Callable[[Page], None] | None = None,
    chromium: str = CHROMIUM,
) -> PageReport:
    """Open base_url + path in headless Chromium and report what the page shows.

    Waits until wait_for_text is in the visible text, or an error state shows, or timeout_s
    passes; without wait_for_text, until no "Loading…" has been shown for a second (weaker: a
    spinner without a label passes for content).
    Then waits settle_s more (a query that fails after the content came shows its toast late),
    takes a full-page screenshot and reads the page. Never raises for what the page shows: check
    report.rendered and report.error_banners. setup(page), if given, runs before the page is
    opened (to route requests, say).
    """
    from playwright.sync_api import sync_playwright

    started = time.monotonic()
    console_errors: list[str] = []
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="ui-browser-profile-") as profile,
        sync_playwright() as playwright,
    ):
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=chromium,
            headless=True,
            args=list(CHROMIUM_ARGS),
            viewport={"width": 1600, "height": 1000},
        )
        try:
            context.add_init_script(_INIT_SCRIPT)
            page = context.new_page()
            page.on(
                "console",
                lambda message: (
                    console_errors.append(message.text) if message.type == "error" else None
                ),
            )
            page.on("pageerror", lambda error: console_errors.append(f"uncaught: {error}"))
            if setup is not None:
                setup(page)
            page.goto(base_url.rstrip("/") + path, wait_until="domcontentloaded")
            rendered = _wait_until_rendered(page, wait_for_text, started + timeout_s)
            page.wait_for_timeout(settle_s * 1000)
            state = page.evaluate(_READ_PAGE)
            page.screenshot(path=str(screenshot), full_page=True)
            url = page.url
        finally:
            context.close()
    banners = [f"text: {phrase}" for phrase in error_texts_in(state["text"])]
    banners += [f"error toast: {toast}" for toast in state["toasts"]]
    banners += [f"python error: {message}" for message in state["pythonErrors"]]
    return PageReport(
        url=url,
        text=state["text"],
        screenshot=screenshot,
        console_errors=console_errors,
        error_banners=banners,
        wait_for_text=wait_for_text,
        rendered=rendered,
        seconds=round(time.monotonic() - started, 1),
    )


def _wait_until_rendered(page: Page, wait_for_text: str | None, deadline: float) -> bool:
    """Poll the page until it is rendered (True) or shows an error or the deadline passes."""
    settled_since: float | None = None
    while time.monotonic() < deadline:
        state = page.evaluate(_READ_PAGE)
        text = state["text"]
        if state["toasts"] or state["pythonErrors"] or error_texts_in(text):
            return wait_for_text is not None and wait_for_text in text
        if wait_for_text is not None:
            if wait_for_text in text:
                return True
        # Not "the text stopped changing": live pages (the overview timeline) tick every second.
        elif not text.strip() or "Loading" in text:
            settled_since = None
        elif settled_since is None:
            settled_since = time.monotonic()
        elif time.monotonic() - settled_since >= 1.0:
            return True
        page.wait_for_timeout(250)
    return False


# --- a Dagster webserver for the tests ------------------------------------------------------


@dataclass
class Webserver:
    base_url: str
    process: subprocess.Popen
    log: Path

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-chars:]


@contextlib.contextmanager
def dagster_webserver(
    workspace: Path | str,
    port: int,
    cwd: Path | str,
    env: Mapping[str, str],
    log: Path,
    executable: Path | str,
    startup_timeout_s: float = 120,
) -> Iterator[Webserver]:
    """`dagster-webserver -w WORKSPACE` on 127.0.0.1:port, in its own process session (so its
    code servers stop with it), until /server_info answers; stopped on exit."""
    base_url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(executable), "-w", str(workspace), "-h", "127.0.0.1", "-p", str(port)],
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Webserver(base_url, process, log)
    try:
        try:
            wait_for_webserver(base_url, process, startup_timeout_s)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}:\n{server.log_tail()}") from None
        yield server
    finally:
        stop_group(process)
