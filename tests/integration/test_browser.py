"""What a person sees: headless Chromium against a real ``airflow api-server``.

The browser signs in through the Airflow login form, opens the socialpulse page inside the
Airflow UI (the nav entry's iframe) and on its own, follows the link to the period report,
and opens the report file with the network switched off. Screenshots land in
``test-artifacts/`` (gitignored; CI keeps the folder).

Needs Chromium: Debian's ``chromium`` package (``.ci/run`` installs it before ``make test``),
or any Chrome/Chromium binary named by ``SOCIALPULSE_CHROMIUM``. Without one the tests are
skipped with a message, unless ``SOCIALPULSE_REQUIRE_BROWSER=1`` (set by ``.ci/run``) makes
that a failure, so that CI cannot pass by skipping them.
"""

from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING, Any

import pytest

from socialpulse.report import SEGMENT_LABELS
from tests.conftest import PROJECT_ROOT
from tests.integration.api_server import PASSWORD, XSS

if TYPE_CHECKING:
    from collections.abc import Iterator

    from playwright.sync_api import Browser, BrowserContext, Frame, Page

    from tests.integration.api_server import Server

pytestmark = pytest.mark.integration

ARTIFACTS = PROJECT_ROOT / "test-artifacts"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
HOW_TO_ENABLE = (
    "headless Chromium not found, browser tests skipped. To run them: "
    "`apt-get update && apt-get install -y chromium` (what .ci/run does), "
    "or set SOCIALPULSE_CHROMIUM=/path/to/chromium"
)
#: flags for a sandbox-less container without a display, GPU or internet
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 60_000


def find_chromium() -> str | None:
    explicit = os.environ.get("SOCIALPULSE_CHROMIUM")
    if explicit:
        return explicit
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = find_chromium()
    if executable is None:
        if os.environ.get("SOCIALPULSE_REQUIRE_BROWSER") == "1":
            pytest.fail(HOW_TO_ENABLE.replace("browser tests skipped", "and it is required"))
        pytest.skip(HOW_TO_ENABLE)
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


class Visit:
    """One browser context (its own cookies) that records what leaves the machine."""

    def __init__(self, context: BrowserContext, base: str) -> None:
        self.context = context
        self.base = base
        #: (URL of the frame that asked, URL asked for) of every request that left the server
        self.external: list[tuple[str, str]] = []
        self.console_errors: list[str] = []
        context.route("**/*", self._route)
        context.set_default_timeout(TIMEOUT_MS)
        self.page = context.new_page()
        self.page.on("console", self._console)

    def _route(self, route: Any) -> None:
        url = route.request.url
        if url.startswith((self.base + "/", "data:", "file:", "about:")):
            route.continue_()
        else:  # no internet here, and the pages promise not to need it: record and refuse
            self.external.append((route.request.frame.url, url))
            route.abort()

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    def sign_in(self, next_path: str, password: str = PASSWORD) -> None:
        """The Airflow login form, as a person fills it in."""
        self.page.goto(f"{self.base}/auth/login?next={self.base}{next_path}")
        self.page.get_by_label("Username").fill("admin")
        self.page.get_by_label("Password").fill(password)
        self.page.get_by_role("button", name="Sign in").click()

    def token_cookie(self) -> str | None:
        return next((c["value"] for c in self.context.cookies() if c["name"] == "_token"), None)

    def screenshot(self, name: str) -> None:
        self.page.screenshot(path=str(ARTIFACTS / name), full_page=True)


@pytest.fixture
def visit(browser: Browser, api_server: Server) -> Iterator[Visit]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        yield Visit(context, api_server.base)
    finally:
        context.close()


def _medians(server: Server) -> dict[str, str]:
    """The segment medians as the page prints them, from the analytics copy (one decimal)."""
    return {seg: f"{m:.1f}" for seg, m in server.expected["medians"].items()}


def _check_socialpulse_page(frame: Frame | Page, server: Server) -> None:
    frame.get_by_role("heading", name="socialpulse", exact=True).wait_for()
    rows = frame.locator("table.success-index tr").filter(has=frame.locator("td.segment"))
    seen = {
        rows.nth(i).locator("td").nth(0).inner_text(): rows.nth(i).locator("td").nth(1).inner_text()
        for i in range(rows.count())
    }
    assert set(seen) == {"craft", "corporation"}  # both segments, each with its median
    assert seen == _medians(server)
    latest = server.expected["latest"].isoformat()
    assert f"Week {latest} to" in frame.locator("body").inner_text()
    # data quality: the quarantined batch, and the fetch error shown as text, not run; the
    # configuration error (an expired token) counts as an error and is listed to be fixed
    summary = "2 fetch errors, 2 warnings, 1 quarantined batch."
    assert frame.get_by_text(summary).is_visible()
    assert frame.get_by_role("heading", name="Configuration to fix").is_visible()
    assert frame.get_by_text("bad-batch").first.is_visible()
    assert frame.get_by_text(XSS).first.is_visible()
    assert frame.get_by_role("link", name="Great Expectations Data Docs").is_visible()


def test_anonymous_visitor_sees_no_numbers(visit: Visit, api_server: Server) -> None:
    response = visit.page.goto(f"{api_server.base}/socialpulse/")
    assert response is not None and response.status in (401, 403)
    body = visit.page.locator("body").inner_text()
    assert "Success index" not in body
    assert all(f"{m}" not in body for m in _medians(api_server).values())


def test_wrong_password_keeps_the_visitor_out(visit: Visit) -> None:
    visit.sign_in("/plugin/socialpulse", password="wrong-password")
    visit.page.get_by_text("Invalid credentials").wait_for()
    assert "/auth/login" in visit.page.url
    assert visit.token_cookie() is None


def test_signed_in_the_airflow_ui_shows_the_socialpulse_page(
    visit: Visit, api_server: Server
) -> None:
    visit.sign_in("/")
    visit.page.wait_for_url(f"{api_server.base}/")
    assert visit.token_cookie()
    # the plugin's entry in the UI's navigation bar, as a person finds it
    visit.page.get_by_role("link", name="socialpulse").click()
    visit.page.wait_for_url(f"{api_server.base}/plugin/socialpulse")
    # the nav entry shows the plugin's page inside the Airflow UI, in an iframe
    iframe = visit.page.locator("iframe[src='/socialpulse/']")
    iframe.wait_for()
    frame = iframe.element_handle().content_frame()
    assert frame is not None
    frame.wait_for_load_state()
    _check_socialpulse_page(frame, api_server)
    visit.page.wait_for_load_state("networkidle")
    visit.screenshot("airflow-ui-socialpulse.png")
    # the Airflow UI around it may ask the internet for things; the socialpulse page may not
    plugin_page = f"{api_server.base}/socialpulse/"
    assert [u for frame_url, u in visit.external if frame_url.startswith(plugin_page)] == []


def test_signed_in_page_links_to_the_report(visit: Visit, api_server: Server) -> None:
    visit.sign_in("/socialpulse/")
    visit.page.wait_for_url(f"{api_server.base}/socialpulse/")
    _check_socialpulse_page(visit.page, api_server)
    visit.screenshot("socialpulse-page.png")

    latest = api_server.expected["latest"].isoformat()
    visit.page.get_by_role("link", name=f"week starting {latest}").click()
    report_url = (
        f"{api_server.base}/socialpulse/reports/{api_server.expected['report']}/report.html"
    )
    visit.page.wait_for_url(report_url)
    _check_report(visit.page, api_server)
    visit.screenshot("report-served.png")
    assert visit.external == [] and visit.console_errors == []


def _check_report(page: Page, server: Server) -> None:
    latest = server.expected["latest"].isoformat()
    title = page.locator("h1#title")
    assert title.get_attribute("data-period-start") == latest
    assert title.inner_text().startswith("Social media success report")
    for segment, median in _medians(server).items():
        label = SEGMENT_LABELS.get(segment, segment)
        row = page.locator(f"tr.overview-row[data-segment='{segment}']")
        assert row.locator("td").first.inner_text() == label
        assert row.locator("td.median-index").inner_text() == median
        assert page.get_by_role("heading", name=label, exact=True).is_visible()
    # the embedded charts are drawn, with a size a person can see
    charts = page.locator("svg.trend-chart, svg.dimension-chart")
    assert charts.count() >= 1
    for i in range(charts.count()):
        box = charts.nth(i).bounding_box()
        assert box is not None and box["width"] > 100 and box["height"] > 50
    assert page.get_by_text("bad-batch").first.is_visible()
    _check_labels_are_not_clipped(page)


def _check_labels_are_not_clipped(page: Page) -> None:
    """Every chart label fits: the dimension names end before their bars begin (the longest,
    "Relationships", used to run under its bar), and the trend chart's week labels stay
    inside the chart (the last one used to be cut at the right edge)."""
    overlaps = page.evaluate(
        """() => [...document.querySelectorAll('svg.dimension-chart g.dim')].map(g => {
            const label = g.querySelector('text').getBBox();
            const bar = g.querySelector('rect').getBBox();
            return [g.dataset.dimension, label.x + label.width - bar.x];
        }).filter(([, over]) => over > 0)"""
    )
    assert overlaps == []
    cut = page.evaluate(
        """() => [...document.querySelectorAll('svg.trend-chart text')].map(t => {
            const box = t.getBBox(), width = t.ownerSVGElement.viewBox.baseVal.width;
            return [t.textContent, box.x + box.width - width, -box.x];
        }).filter(([, right, left]) => right > 0 || left > 0)"""
    )
    assert cut == []


def test_report_file_opens_offline(browser: Browser, api_server: Server) -> None:
    """The report on disk, network switched off: it renders fully and asks for nothing."""
    report = api_server.data / "reports" / api_server.expected["report"] / "report.html"
    context = browser.new_context(viewport={"width": 1280, "height": 900}, offline=True)
    try:
        visit = Visit(context, base="file://")
        response = visit.page.goto(report.as_uri())
        assert response is not None and response.ok
        _check_report(visit.page, api_server)
        visit.screenshot("report-offline.png")
        assert visit.external == [] and visit.console_errors == []
    finally:
        context.close()


def _check_data_docs_index(page: Page) -> None:
    """The GX Data Docs index as GX means it: the validation list (drawn by bootstrap-table,
    on jQuery), Bootstrap's stylesheet and Font Awesome's icon font, all from the site itself."""
    page.wait_for_load_state()  # bootstrap-table draws the list while the page loads
    rows = page.locator("table.ge-index-page-validation-results-table tbody tr[data-index]")
    assert rows.count() >= 1, "the list of validations is empty"
    assert "docs-fixture" in rows.first.inner_text()
    _check_bootstrap(page)


def _check_bootstrap(page: Page) -> None:
    looks = page.evaluate(
        """async () => {
            let icons;
            try {
                icons = (await document.fonts.load('900 16px "Font Awesome 6 Free"'))
                    .map(face => face.status);
            } catch (error) {
                icons = [String(error)];
            }
            return {
                font: getComputedStyle(document.body).fontFamily,
                navbar: getComputedStyle(document.querySelector('nav.navbar')).position,
                icons: icons,
            };
        }"""
    )
    assert looks["font"].startswith("-apple-system")  # Bootstrap's reboot: its font stack
    assert looks["navbar"] == "sticky"  # Bootstrap's .sticky-top
    assert looks["icons"] == ["loaded"]


def test_data_docs_are_styled_without_the_internet(visit: Visit, api_server: Server) -> None:
    """Served by the plugin, every request off this machine refused: the Data Docs index lists
    the validation and is styled, and so is the validation page it links to."""
    visit.sign_in("/socialpulse/data-docs/index.html")
    visit.page.wait_for_url(f"{api_server.base}/socialpulse/data-docs/index.html")
    _check_data_docs_index(visit.page)
    visit.page.wait_for_load_state("networkidle")
    visit.screenshot("data-docs-served.png")

    visit.page.locator(
        "table.ge-index-page-validation-results-table tbody tr[data-index]"
    ).first.click()
    visit.page.wait_for_url("**/validations/raw/manual_metrics/docs-fixture/**")
    visit.page.get_by_text("raw.manual_metrics").first.wait_for()
    _check_bootstrap(visit.page)
    visit.screenshot("data-docs-validation-served.png")
    assert visit.external == [] and visit.console_errors == []


def test_data_docs_files_open_offline(browser: Browser, api_server: Server) -> None:
    """The Data Docs on disk, network switched off: the same list, the same styles."""
    index = api_server.data / "gx_docs" / "index.html"
    context = browser.new_context(viewport={"width": 1280, "height": 900}, offline=True)
    try:
        visit = Visit(context, base="file://")
        response = visit.page.goto(index.as_uri())
        assert response is not None and response.ok
        _check_data_docs_index(visit.page)
        visit.screenshot("data-docs-offline.png")
        assert visit.external == [] and visit.console_errors == []
    finally:
        context.close()
