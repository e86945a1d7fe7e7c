"""The headless browser of the tests: one Chromium per test session, and ``open_report``.

Browser tests drive Debian's Chromium (``/usr/bin/chromium``) through Python Playwright; ``playwright install`` is
never needed. The fixtures are registered once, by ``tests/conftest.py``: a test module that imported them itself
declared a second session fixture, and a pytest-xdist worker that ran it and ``tests/e2e`` started Playwright's sync
API twice in one process ("It looks like you are using Playwright Sync API inside the asyncio loop").
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("MLCASE_CHROMIUM") or "/usr/bin/chromium")  # Debian's package
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# what plotly draws data with, per trace family (cartesian, pie-like, polar, tables, WebGL canvases ...)
MARKS = ", ".join([".plot path", ".plot image", ".plot text", ".pielayer path", ".sunburstlayer path",
                   ".treemaplayer path", ".funnelarealayer path", ".polarlayer path", ".ternarylayer path",
                   ".indicatorlayer text", ".table .cell-rect", ".sankey path", ".geolayer path",
                   ".gl-container canvas"])
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")

def chromium_missing(ci: str | None = None) -> str | None:
    """Why the browser tests cannot run here, or None. On CI (``CI`` set to anything but empty, ``0`` or
    ``false``) a missing Chromium is a failure, not a skip: CI must never pass without opening the report."""
    if CHROMIUM.exists():
        return None
    why = f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium, or `make system-deps`)"
    ci = os.environ.get("CI") if ci is None else ci
    if ci and ci.strip().lower() not in ("0", "false", "no"):
        pytest.fail(f"CI is set and {why}", pytrace=False)
    return why


@pytest.fixture(scope="session")
def browser():
    """A headless Chromium (Debian's package, driven by Playwright); skips when it is not installed,
    fails instead when ``CI`` is set."""
    why = chromium_missing()
    if why:
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    try:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        pw.stop()


@dataclass
class ReportView:
    """An opened report page and what the browser reported while loading it."""

    page: object
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)  # alert/confirm/prompt: a script ran that the report never opens

    def figures(self) -> list[dict]:
        """Every ``.plotly-fig``: its id, render state and size of the SVG plotly drew."""
        return self.page.eval_on_selector_all("div.plotly-fig", f"""divs => divs.map(d => {{
            const svg = d.querySelector('svg.main-svg');
            const r = svg ? svg.getBoundingClientRect() : null;
            return {{id: d.id, rendered: d.getAttribute('data-rendered'),
                    svg_width: r ? r.width : 0, svg_height: r ? r.height : 0,
                    marks: d.querySelectorAll({MARKS!r}).length}};
        }})""")

    def assert_healthy(self) -> None:
        """No console or page errors, nothing fetched from outside the file, every plot drawn,
        and the decision banner visible with a verdict."""
        assert self.console_errors == [], f"console errors: {self.console_errors}"
        assert self.page_errors == [], f"page errors: {self.page_errors}"
        assert self.external_requests == [], f"requests leaving the file: {self.external_requests}"
        assert self.dialogs == [], f"dialogs opened: {self.dialogs}"
        for fig in self.figures():
            assert fig["rendered"] == "true", f"plot {fig['id']} was not drawn ({fig['rendered']})"
            assert fig["svg_width"] > 100 and fig["svg_height"] > 100, f"plot {fig['id']} is empty: {fig}"
            assert fig["marks"] > 0, f"plot {fig['id']} has no marks: {fig}"
        banner = self.page.locator("#decision .banner")
        assert banner.is_visible()
        assert banner.get_attribute("data-verdict") in {"GO", "USE_BASELINE", "NO_GO", "INCONCLUSIVE",
                                                         "STOPPED", "PENDING"}


@pytest.fixture
def open_report(browser):
    """``open_report(path, javascript=True) -> ReportView``: load a report from disk and wait for its plots."""
    contexts = []

    def _open(path: Path, javascript: bool = True, width: int = 1360, height: int = 900) -> ReportView:
        context = browser.new_context(java_script_enabled=javascript, viewport={"width": width, "height": height})
        contexts.append(context)
        page = context.new_page()
        view = ReportView(page)
        page.on("console", lambda m: view.console_errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: view.page_errors.append(str(e)))
        page.on("dialog", lambda d: (view.dialogs.append(d.message), d.dismiss()))
        page.on("request", lambda r: None if r.url.startswith(LOCAL_SCHEMES) else view.external_requests.append(r.url))
        page.goto(Path(path).resolve().as_uri(), wait_until="load")
        if javascript:
            page.wait_for_selector("body[data-plots='done']", state="attached", timeout=30_000)
        return view

    yield _open
    for context in contexts:
        context.close()
