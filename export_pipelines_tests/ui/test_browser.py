"""The Dagster UI as a data engineer uses it, in a real browser.

Playwright drives Debian's Chromium (launched by its path: no browser is downloaded) against a
real dagster-webserver and dagster-daemon over the bundled demo config, with the repository's
dagster.yaml (queued runs, pools). The tests click and type where a user would: the catalog,
an incremental export's partitions tab and its backfill dialog, the run page and its event log,
the Materialize button, the lineage tab and the automation list. Each screen is saved as a
screenshot in the session's `ui_screenshots` folder (or $EXPORT_UI_SCREENSHOTS).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import signal
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from export_pipelines.demo.generator import generate_demo_database
from export_pipelines.source import demo_database_path
from export_pipelines.spec.loader import bundled_demo_config
from export_pipelines_tests.conftest import require_service
from export_pipelines_tests.servers.dagster_webserver import Webserver, start_daemon, start_webserver, webserver_executable

# Debian's chromium package (the Makefile's test-services target installs it).
CHROMIUM = Path("/usr/bin/chromium")
REPO_DAGSTER_YAML = Path(__file__).parents[2] / "dagster.yaml"


def fast_queue_instance() -> str:
    """The repository's dagster.yaml, its run queue looked at every second instead of every five (the test waits less)."""
    instance = yaml.safe_load(REPO_DAGSTER_YAML.read_text())
    instance["run_coordinator"]["config"] = {"dequeue_interval_seconds": 1}
    return yaml.safe_dump(instance)
# The backfill daemon looks for new backfills every 30 s; the run then takes a few seconds.
RUN_SECONDS = 120
# Three daily windows of capillary_transactions (Asia/Kolkata) inside the demo data.
BACKFILL = ("2025-06-02", "2025-06-04")
BACKFILL_FILE = "transactions_20250602_20250605_001.csv.gz"
# The same windows in UTC, as the demo database stores its naive timestamps.
BACKFILL_UTC = ("2025-06-01 18:30:00", "2025-06-04 18:30:00")
FAILING_EXPORT = "voucherify_redemptions"


@dataclass
class Console:
    server: Webserver
    home: Path
    database: Path
    screenshots: Path


@pytest.fixture(scope="session")
def console(tmp_path_factory):
    """The webserver and daemon over the demo config and a small demo database, shared by the session."""
    if webserver_executable() is None:
        require_service("dagster-webserver is not installed")
    folder = tmp_path_factory.mktemp("ui_console")
    home = folder / "dagster_home"
    database = demo_database_path(home)
    database.parent.mkdir(parents=True)
    generate_demo_database(f"sqlite:///{database}", customers=200, seed=42)
    # A file where the export's download folder must be: its upload fails with a real OSError
    # (the demo keeps every export's files in its download folder).
    blocked = home / "storage" / "downloads" / FAILING_EXPORT
    blocked.parent.mkdir(parents=True)
    blocked.write_text("not a folder\n")
    environment = {
        "EXPORT_PIPELINES_CONFIG": str(bundled_demo_config()),
        "EXPORT_SOURCE_URL": f"sqlite:///{database}",
        "EXPORT_REDIRECT_TO_DOWNLOAD": "1",
    }
    server = start_webserver(folder, environment, instance_yaml=fast_queue_instance())
    daemon = start_daemon(server.home, folder, environment)
    screenshots = Path(os.environ.get("EXPORT_UI_SCREENSHOTS") or tmp_path_factory.mktemp("ui_screenshots"))
    screenshots.mkdir(parents=True, exist_ok=True)
    yield Console(server, home, database, screenshots)
    os.killpg(daemon.pid, signal.SIGTERM)
    daemon.wait(timeout=30)
    server.stop()


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        require_service(f"{CHROMIUM} is missing: apt-get install chromium (make test-services)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, console, request):
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1600, "height": 1000}, base_url=console.server.url)
    page = context.new_page()
    # Two shared cores: the UI's queries can take seconds.
    page.set_default_timeout(30_000)
    expect.set_options(timeout=30_000)
    # Dagster's "Join the community" dialog comes once per instance, whichever page is first: skip it as a user would.
    page.add_locator_handler(page.get_by_role("button", name="Skip"), lambda skip: skip.click())
    yield page
    # The screen the test ended on, passed or failed.
    screenshot(page, console, f"last_{request.node.name}")
    context.close()


def screenshot(page, console: Console, name: str) -> None:
    page.screenshot(path=str(console.screenshots / f"{name}.png"), full_page=True)


def demo_export_names() -> list[str]:
    """The demo's exports, read from its spec files."""
    folder = bundled_demo_config() / "exports"
    return sorted(yaml.safe_load(path.read_text())["name"] for path in folder.glob("*.yaml"))


def export_link(page, name: str):
    """The catalog row's link to an export's page (its text is the asset key, exports / <name>)."""
    return page.locator(f'a[href="/assets/exports/{name}"]').filter(has_text=name).first


def test_the_catalog_lists_every_demo_export(page, console):
    from playwright.sync_api import expect

    page.goto("/assets")
    names = demo_export_names()
    assert len(names) == 9
    for name in names:
        expect(export_link(page, name)).to_be_visible()
    screenshot(page, console, "01_catalog")

    # An export's Overview: description, owner, kinds, schedule and the fields it maps.
    export_link(page, "antavo_customers").click()
    expect(page.get_by_text("Customers of the DACH markets for the CRM team", exact=False).first).to_be_visible()
    for text in ("jane@example.com", "ftps", "psv", "monthly (0 6 15,L * * Europe/Budapest)"):
        expect(page.get_by_text(text, exact=False).first).to_be_visible()
    expect(page.locator('a[href$="/schedules/antavo_customers_schedule"]').first).to_be_visible()
    # The fields table: each source field and the header it becomes.
    expect(page.get_by_role("row").filter(has_text="metadata.tier").filter(has_text="Tier").first).to_be_visible()
    screenshot(page, console, "02_export_overview")


def test_a_backfill_from_the_partitions_dialog_runs_and_shows_its_files(page, console):
    from playwright.sync_api import expect

    page.goto("/assets/exports/capillary_transactions?view=partitions")
    page.get_by_role("button", name="Materialize…").click()
    dialog = page.get_by_role("dialog")
    # The dialog offers the last 90 days; the range is older.
    dialog.get_by_text("Show all partitions").click()
    partitions = dialog.get_by_role("textbox").first
    partitions.fill(f"[{BACKFILL[0]}...{BACKFILL[1]}]")
    partitions.press("Enter")
    expect(dialog.get_by_text("3 partitions")).to_be_visible()
    screenshot(page, console, "03_backfill_dialog")
    dialog.get_by_role("button", name="Launch backfill").click()

    page.get_by_role("link", name="View", exact=True).or_(page.get_by_role("button", name="View", exact=True)).first.click()
    expect(page.get_by_text(f"{BACKFILL[0]}...{BACKFILL[1]}").first).to_be_visible()
    page.get_by_role("tab", name="Runs").or_(page.get_by_text("Runs", exact=True).last).first.click()
    succeeded = page.get_by_text("Success", exact=True)
    expect(succeeded.first).to_be_visible(timeout=RUN_SECONDS * 1000)
    screenshot(page, console, "04_backfill_runs")
    # The run's id, as the runs table shows it (its first 8 hex digits), links to its page.
    page.locator('a[href^="/runs/"]').filter(has_text=re.compile(r"^\s*[0-9a-f]{8}\s*$")).first.click()

    # The run page: every step succeeded, and the materialization lists the delivered file.
    expect(page.get_by_text("Succeeded (4)")).to_be_visible()
    page.get_by_text("Succeeded (4)").click()
    for stage in ("extract", "map", "serialize", "upload"):
        expect(page.get_by_text(f"capillary_transactions__{stage}", exact=False).first).to_be_visible()
    page.get_by_placeholder("Filter…").fill("type:ASSET_MATERIALIZATION")
    delivered = console.home / "storage" / "downloads" / "capillary_transactions" / BACKFILL_FILE
    rows = expected_backfill_rows(console.database)
    assert rows > 0
    assert gzip.decompress(delivered.read_bytes()).count(b"\r\n") == rows + 1  # the header and one line a row
    page.get_by_role("button", name="View full message").first.click()
    table_row = page.get_by_role("dialog").get_by_role("row").filter(has_text=BACKFILL_FILE).first
    expect(table_row).to_be_visible()
    expect(table_row).to_contain_text(hashlib.sha256(delivered.read_bytes()).hexdigest())
    expect(table_row).to_contain_text(str(rows))
    screenshot(page, console, "05_backfill_run")

    # Rows and bytes are numbers, so the export's Overview plots them over its materializations.
    page.goto("/assets/exports/capillary_transactions")
    page.get_by_role("button", name="Plots").click()
    # Plotted by materialization ("Events"); the "Partitions" view showed no series for these windows here.
    page.get_by_role("button", name=re.compile(r"\bEvents$")).click()
    for plotted in ("rows_written", "file_size_bytes"):
        expect(page.get_by_text(plotted, exact=True).first).to_be_visible()
    screenshot(page, console, "05b_plots")


def expected_backfill_rows(database: Path) -> int:
    """The spec's filter (amount > 0) over the three windows, by plain SQL."""
    with sqlite3.connect(database) as connection:
        query = "SELECT count(*) FROM transactions WHERE amount > 0 AND created_at >= ? AND created_at < ?"
        return connection.execute(query, BACKFILL_UTC).fetchone()[0]


def test_a_run_that_failed_at_upload_shows_its_cause(page, console):
    from playwright.sync_api import expect

    page.goto(f"/assets/exports/{FAILING_EXPORT}")
    page.get_by_role("button", name=re.compile(r"\bMaterialize$")).click()
    page.get_by_role("link", name="View", exact=True).or_(page.get_by_role("button", name="View", exact=True)).first.click()
    expect(page.get_by_text("Failure", exact=True).first).to_be_visible(timeout=RUN_SECONDS * 1000)
    expect(page.get_by_text("Errored (1)")).to_be_visible()
    # The errored step, in the panel beside the timeline.
    expect(page.get_by_text(re.compile(rf"^exports__{FAILING_EXPORT}\.{FAILING_EXPORT}__upload$")).first).to_be_visible()
    page.get_by_placeholder("Filter…").fill("type:RUN_FAILURE")
    cause = page.get_by_text(f"For export {FAILING_EXPORT}, the upload step failed", exact=False).first
    expect(cause).to_be_visible()
    expect(cause).to_contain_text("File exists")
    expect(page.get_by_text("Exceeded max_retries", exact=False)).to_have_count(0)
    # Where the README sends a user to rerun it: the re-execute menu's "From failure".
    page.get_by_role("button", name=re.compile("Re-execute all")).locator("xpath=..").get_by_role("button", name="arrow_drop_down").click()
    expect(page.get_by_role("menuitem", name=re.compile("From failure"))).to_be_enabled()
    screenshot(page, console, "06_failed_run")


def test_the_dependent_export_has_its_upstream_in_the_lineage(page, console):
    from playwright.sync_api import expect

    page.goto("/assets/exports/apparel21_orders")
    page.get_by_role("tab", name="Lineage").or_(page.get_by_role("link", name="Lineage", exact=True)).last.click()
    # The upstream's node in the graph (not the sensor's name, which also holds it).
    expect(page.get_by_text("apparel21_customers", exact=True).first).to_be_visible()
    screenshot(page, console, "07_lineage")


def test_the_automation_list_says_which_year_the_one_off_schedule_runs(page, console):
    from playwright.sync_api import expect

    page.goto("/automation")
    name = page.get_by_text("voucherify_vouchers_schedule", exact=True)
    expect(name).to_be_visible()
    # The cron names the day of every year; the info icon beside the name gives the date and says so.
    name.locator("xpath=..").get_by_role("img", name="info").hover()
    tooltip = page.get_by_role("tooltip")
    expect(tooltip).to_contain_text("once on 2099-12-01T06:00 Europe/Budapest (the cron repeats yearly; other years' ticks skip)")
    expect(tooltip).to_have_css("opacity", "1")
    screenshot(page, console, "08_automation")
