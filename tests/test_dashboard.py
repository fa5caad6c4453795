"""The live dashboard in headless Chromium (Debian's chromium + chromedriver, driven by Selenium) against a real
stream: three days of the dataset scored into an isolated pipeline, labels arriving a day later, and broken records
dead-lettered. The stream-monitoring notebook reads the same stream (one stream start for both)."""
from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score

from fraud.clients.elasticsearch import elasticsearch_client
from fraud.clients.kafka import kafka_producer
from fraud.config import PROJECT_ROOT
from fraud.dashboard.queries import average_precision
from fraud.process import Child
from fraud.producer import Pace, replay
from fraud.testing.data import BROKEN
from fraud.testing.notebooks import NOTEBOOKS, figures, run_notebook, text
from fraud.testing.pipeline import StreamProcess, es_scored_count, isolated_pipeline, mysql_count

pytestmark = pytest.mark.services

ARTIFACTS = PROJECT_ROOT / "test-artifacts"
CHARTS = ["chart-rate", "chart-amount", "chart-hour", "chart-decisions", "chart-pr", "chart-scores",
          "chart-duration", "chart-throughput"]


def test_average_precision_from_score_bins_equals_sklearn_on_binned_scores():
    rng = np.random.default_rng(3)
    labels = rng.random(5000) < 0.05
    scores = np.round(np.clip(rng.normal(0.2 + 0.5 * labels, 0.2), 0, 1), 3)
    bins = {flag: pd.Series(scores[labels == flag]).value_counts().to_dict() for flag in (True, False)}
    assert average_precision(bins[True], bins[False]) == pytest.approx(average_precision_score(labels, scores))
    assert average_precision({}, bins[False]) is None


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Dashboard:
    """``fraud dashboard`` as a subprocess on a free port."""

    def __init__(self, env: dict[str, str], log_file: Path):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_file = log_file
        self.child = Child([sys.executable, "-m", "fraud.cli", "dashboard", "--port", str(self.port)], log_file,
                           env=env, cwd=PROJECT_ROOT)
        deadline = time.monotonic() + 60
        while True:
            try:
                get_json(self.url + "healthz")
                return
            except OSError:
                pass
            if self.child.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the dashboard did not start:\n{log_file.read_text()}")
            time.sleep(0.5)

    def stop(self) -> None:
        self.child.stop(patience_s=30)


@pytest.fixture(scope="module")
def live(stack, data_dir, tmp_path_factory):
    """An isolated pipeline fed the broken records of test_validation (dead letters), then three days of every 4th
    card, labels a day later, and its dashboard."""
    tmp = tmp_path_factory.mktemp("dashboard")
    history = pd.read_parquet(data_dir / "transactions.parquet")
    history = history[(history.TX_DATETIME >= "2018-06-01") & (history.TX_DATETIME < "2018-06-04")
                      & (history.CUSTOMER_ID % 4 == 0)]
    broken = [value for value, _ in BROKEN if b"2027-01-01" not in (value or b"")]  # not a time bomb
    with isolated_pipeline(stack, tmp, "dashboard") as (settings, env):
        stream = StreamProcess(env, tmp / "stream.log").start()
        dashboard = None
        try:
            producer = kafka_producer(settings)
            for offset, value in enumerate(broken):
                producer.produce(settings.kafka.topics.raw, key=str(offset), value=value)
            assert producer.flush(30) == 0
            summary = replay(settings, history, Pace(rate=2000), delay_days=1, progress=False)
            stream.wait_for(lambda: mysql_count(settings) == len(history), 600, "every transaction scored")
            es = elasticsearch_client(settings)

            def labelled() -> int:
                es.indices.refresh(index=settings.elasticsearch.index)
                return es.count(index=settings.elasticsearch.index, query={"exists": {"field": "tx_fraud"}})["count"]
            stream.wait_for(lambda: labelled() == summary["labels"], 300, "every label in Elasticsearch")
            stream.wait_for(lambda: mysql_count(settings, "dead_letters") == len(broken), 300, "the dead letters")
            dashboard = Dashboard(env, tmp / "dashboard.log")
            yield settings, env, dashboard, history
        finally:
            if dashboard is not None:
                dashboard.stop()
            assert stream.stop() == 0, stream.log_tail()


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver_path):
        message = "Debian's chromium and chromium-driver are needed (apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1400,2600"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    yield driver
    driver.quit()


def wait_until(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)


def chart_points(driver) -> dict[str, int]:
    return driver.execute_script(
        "return Object.fromEntries(arguments[0].map("
        "id => [id, Number(document.getElementById(id).dataset.points || 0)]))",
        CHARTS)


def visible_errors(driver) -> list[str]:
    return driver.execute_script("return [...document.querySelectorAll('.error')].filter(e => !e.hidden)"
                                 ".map(e => e.closest('section').id + ': ' + e.textContent)")


def test_every_chart_renders_the_live_data(live, browser):
    settings, _, dashboard, history = live
    started = time.monotonic()
    browser.get(dashboard.url)
    wait_until(lambda: browser.execute_script("return Number(document.body.dataset.refreshed || 0)") >= 1, 60,
               "the first refresh")
    loaded_s = time.monotonic() - started
    assert visible_errors(browser) == []
    points = chart_points(browser)
    assert all(points[chart] > 0 for chart in CHARTS), points
    rows = browser.execute_script("return document.querySelectorAll('#alerts tbody tr').length")
    flagged = browser.execute_script("return document.getElementById('alert-count').textContent")
    assert rows > 0 and flagged.endswith("matching")
    assert int(browser.execute_script("return document.getElementById('matrix').dataset.points")) >= 2
    status = browser.find_element("id", "status").text
    assert f"{len(history):,} scored" in status and "model " in status
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "dashboard.png"))
    print(f"dashboard: first full refresh {loaded_s:.2f}s after navigation, {len(history)} transactions loaded")


def test_the_stream_monitoring_notebook_reads_the_live_stream(live):
    settings, env, _, history = live
    notebook = run_notebook(NOTEBOOKS / "03-stream-monitoring.ipynb", env, "03-stream-monitoring.ipynb")
    assert f"{len(history):,} scored transactions" in text(notebook, "decisions")
    assert figures(notebook, "decisions") == 1 and figures(notebook, "scores") == 1
    assert figures(notebook, "latency") == 1 and "50%" in text(notebook, "latency")
    assert es_scored_count(settings) == len(history)
    assert figures(notebook, "elasticsearch") == 1 and f"{len(history):,} scored documents" in text(notebook,
                                                                                                   "elasticsearch")
    letters = text(notebook, "dead-letters")
    assert figures(notebook, "dead-letters") == 1 and "malformed JSON" in letters and "empty payload" in letters
    assert figures(notebook, "progress") == 1 and "fraud-decision" in text(notebook, "progress")


def test_the_performance_figures_equal_sklearn_on_the_labelled_documents(live):
    settings, _, dashboard, _ = live
    es = elasticsearch_client(settings)
    hits = es.search(index=settings.elasticsearch.index, size=10000, query={"exists": {"field": "tx_fraud"}},
                     source=["fraud_score", "decision", "tx_fraud"])["hits"]["hits"]
    docs = pd.DataFrame([hit["_source"] for hit in hits])
    performance = get_json(dashboard.url + "api/performance")
    assert performance["labelled"] == len(docs) > 0
    flagged, fraud = docs.decision.isin(["review", "block"]), docs.tx_fraud == 1
    assert performance["caught"] == (flagged & fraud).sum() and performance["missed"] == (~flagged & fraud).sum()
    assert performance["precision"] == pytest.approx((flagged & fraud).sum() / flagged.sum())
    binned = docs.fraud_score.map(lambda s: np.floor(s / 0.001 + 1e-9) * 0.001)
    assert performance["average_precision"] == pytest.approx(average_precision_score(fraud, binned), abs=1e-9)


def test_a_fresh_fraud_appears_in_the_alerts_without_a_reload(live, browser):
    settings, _, dashboard, history = live
    browser.get(dashboard.url)
    wait_until(lambda: browser.execute_script("return Number(document.body.dataset.refreshed || 0)") >= 1, 60,
               "the first refresh")
    last = history.iloc[-1]
    fraud = pd.DataFrame([{"TRANSACTION_ID": int(history.TRANSACTION_ID.max()) + 1,
                           "TX_DATETIME": last.TX_DATETIME + pd.Timedelta(minutes=1),
                           "CUSTOMER_ID": int(last.CUSTOMER_ID), "TERMINAL_ID": int(last.TERMINAL_ID),
                           "TX_AMOUNT": 4999.0}])  # far above any amount this card made: scenario 1 of the handbook
    browser.execute_script("window.loadedBeforeTheFraud = true")  # a reload would drop it
    replay(settings, fraud, Pace(rate=100), progress=False)
    row = wait_until(lambda: browser.execute_script(
        "return document.querySelector(arguments[0])", f"#alerts tr[data-transaction-id='{fraud.TRANSACTION_ID[0]}']"),
        180, "the new fraud in the alerts table")
    assert browser.execute_script("return window.loadedBeforeTheFraud === true")  # polled, no reload
    assert "4,999.00" in row.text and ("block" in row.text or "review" in row.text)


def test_record_text_is_shown_as_text_never_run_as_html(live, browser):
    settings, _, dashboard, _ = live
    es = elasticsearch_client(settings)
    hostile = "<img src=x onerror=\"window.pwned=1\"><script>window.pwned=2</script>"
    es.index(index=settings.elasticsearch.index, id="999999999", refresh=True, document={
        "transaction_id": 999999999, "tx_datetime": "2018-06-03T23:59:00", "customer_id": 1, "terminal_id": 2,
        "tx_amount": 1.0, "fraud_score": 0.99, "decision": "block", "reason_codes": hostile, "model_version": "x",
        "kafka_timestamp": datetime.now().isoformat(), "scored_at": datetime.now().isoformat()})
    browser.get(dashboard.url)
    cell = wait_until(lambda: browser.execute_script(
        "const row = document.querySelector(\"#alerts tr[data-transaction-id='999999999']\");"
        "return row && row.querySelector('td.reasons')"), 60, "the hostile record in the alerts")
    assert cell.text == hostile
    assert browser.execute_script("return window.pwned === undefined && !document.querySelector('#alerts img')")


def test_a_service_down_shows_a_clear_message_and_the_rest_keeps_working(live, browser, tmp_path):
    _, env, _, _ = live
    dead_es = Dashboard({**env, "FRAUD_ELASTICSEARCH_PORT": str(_free_port())}, tmp_path / "dashboard.log")
    try:
        browser.get(dead_es.url)
        wait_until(lambda: browser.execute_script("return Number(document.body.dataset.refreshed || 0)") >= 1, 60,
                   "the first refresh")
        errors = visible_errors(browser)
        assert {e.split(":")[0] for e in errors} == {"patterns", "detection", "performance"}, errors
        assert all("Elasticsearch at http://127.0.0.1:" in e and "is unavailable" in e for e in errors)
        assert chart_points(browser)["chart-duration"] > 0  # pipeline health comes from MySQL, still up
    finally:
        dead_es.stop()
