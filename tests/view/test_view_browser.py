"""The results browser in a real headless Chromium (Debian's chromium + chromium-driver, driven by selenium).

Run with `python -m pytest -m browser`; `.ci/run` installs the browser first."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from harness.analysis import report
from harness.analysis.stats import wilson
from harness.store import labels
from harness.store.queue import write_queue
from harness.store.records import RecordStore
from harness.view.collect import load_runs
from harness.view.site import build
from harness.view.synthetic import SYSTEM, run_folder
from harness.view.synthetic import records as synthetic_records
from tests.conftest import serving

pytestmark = pytest.mark.browser
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1400,900")


def chrome(downloads: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not binary or not driver:
        pytest.fail("chromium / chromedriver not found: apt-get install -y chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    browser = webdriver.Chrome(service=Service(driver), options=options)
    browser.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    return browser


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("results")
    run_folder(root / "sweep" / "a", 200, model="synth-a", seed=0)
    run_folder(root / "sweep" / "b", 200, model="synth-b", seed=1)
    build(load_runs([root / "sweep"]), root / "site", chunk=64)
    return root, root / "site"


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator:
    downloads = tmp_path_factory.mktemp("downloads")
    driver = chrome(downloads)
    driver.downloads = downloads
    yield driver
    driver.quit()


def wait(condition, timeout: float = 20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("the page did not get there in time")


def open_page(browser, url: str) -> None:
    browser.get("about:blank")  # a fresh load, not a jump to another #tab of the same page
    browser.get(url)
    wait(lambda: browser.execute_script("return document.body.dataset.ready === '1'"))


def errors(browser) -> list[dict]:
    return [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]


def choose(browser, select: str, text: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element("id", select)).select_by_visible_text(text)


def count(browser) -> int:
    return int(wait(lambda: browser.find_element("id", "count").get_attribute("data-count")))


def records(root: Path, run: str):
    return list(RecordStore(root / "sweep" / run / "records.jsonl").load().values())


def test_every_tab_loads_without_console_errors_from_disk_and_over_http(site, browser):
    _root, folder = site
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    with serving(server):
        for url in (folder.joinpath("index.html").as_uri(), f"http://127.0.0.1:{server.server_address[1]}/index.html"):
            open_page(browser, url)
            for tab in ("samples", "diff", "labels", "overview", "samples"):
                browser.find_element("css selector", f"nav button[data-tab={tab}]").click()
            wait(lambda: browser.find_elements("css selector", "#samples-table .tabulator-row"))
            browser.find_elements("css selector", "#samples-table .tabulator-row")[3].click()
            wait(lambda: "ASSISTANT" in browser.find_element("id", "transcript").text.upper())
            browser.find_element("id", "f-text").send_keys("guide number 7\n")
            wait(lambda: "of 400 samples" in browser.find_element("id", "count").text)
            assert errors(browser) == [], url


def test_overview_numbers_equal_asr_csv(site, browser):
    root, folder = site
    open_page(browser, folder.joinpath("index.html").as_uri())
    cells = wait(lambda: browser.find_elements("css selector", "#overview-table .asr"))
    shown = [(float(c.get_attribute("data-asr")), c.text) for c in cells]
    expected = []
    for run in ("a", "b"):
        for row in pd.read_csv(root / "sweep" / run / "asr.csv").itertuples():
            if hasattr(row, "asr_lo"):  # the table's own interval, when the report writes one
                lo, hi = row.asr_lo, row.asr_hi
            else:
                lo, hi = (100 * b for b in wilson(round(row.asr / 100 * row.n_harmful), row.n_harmful))
            expected.append((row.asr, f"{row.asr:.1f} [{lo:.1f}, {hi:.1f}]"))
    assert [s[0] for s in shown] == pytest.approx([e[0] for e in expected])
    assert [s[1] for s in shown] == [e[1] for e in expected]


def test_filters_show_the_right_counts(site, browser):
    root, folder = site
    open_page(browser, folder.joinpath("index.html").as_uri() + "#samples")
    everything = records(root, "a") + records(root, "b")
    assert count(browser) == len(everything)
    choose(browser, "f-verdict", "harmful")
    assert count(browser) == sum(r.verdict.harmful is True and not r.verdict.error for r in everything)
    choose(browser, "f-run", "b")
    choose(browser, "f-cat", "fraud")
    assert count(browser) == sum(r.verdict.harmful is True and r.behavior.category == "fraud" for r in records(root, "b"))
    choose(browser, "f-verdict", "any")
    choose(browser, "f-cfg", "k=20")
    assert count(browser) == sum(r.behavior.category == "fraud" and r.completion.request.params["k"] == 20
                                 for r in records(root, "b"))
    browser.find_element("id", "f-reset").click()
    choose(browser, "f-err", "yes")
    assert count(browser) == sum(bool(r.verdict.error) for r in everything)


def test_diff_lists_the_flipped_behaviors(site, browser):
    root, folder = site
    open_page(browser, folder.joinpath("index.html").as_uri() + "#diff")
    browser.find_element("id", "d-go").click()
    a = {(r.behavior.id, r.completion.request.params["k"]): r.verdict for r in records(root, "a")}
    b = {(r.behavior.id, r.completion.request.params["k"]): r.verdict for r in records(root, "b")}

    def code(v):
        return "e" if v.error else v.harmful

    flipped = sum(code(a[k]) != code(b[k]) for k in a.keys() & b.keys())
    assert int(wait(lambda: browser.find_element("id", "d-summary").get_attribute("data-count"))) == flipped > 0


def test_a_label_made_in_the_page_round_trips_through_import(site, browser):
    root, folder = site
    open_page(browser, folder.joinpath("index.html").as_uri() + "#samples")
    browser.find_element("id", "reviewer").send_keys("tester")
    choose(browser, "f-run", "a")
    wait(lambda: browser.find_elements("css selector", "#samples-table .tabulator-row"))
    browser.find_elements("css selector", "#samples-table .tabulator-row")[0].click()
    opposite = "not_harmful" if records(root, "a")[0].verdict.harmful else "harmful"
    wait(lambda: browser.find_elements("css selector", f"#transcript button[data-label={opposite}]"))[0].click()
    choose(browser, "f-dis", "judge vs human")
    assert count(browser) == 1
    browser.find_element("css selector", "nav button[data-tab=labels]").click()
    browser.find_element("id", "export").click()
    exported = wait(lambda: [p for p in browser.downloads.glob("labels-*.json")])[0]
    wait(lambda: exported.stat().st_size > 0)
    assert labels.import_file(exported, [root / "sweep"]) == {(root / "sweep" / "a").resolve(): (1, 0)}
    (stored,) = [line for changes in labels.read(root / "sweep" / "a").values() for line in changes]
    assert (stored.key, stored.label, stored.who) == (records(root, "a")[0].key, opposite, "tester")
    # rebuilt, the site shows the stored label in a browser that never made it
    build(load_runs([root / "sweep"]), folder, chunk=64)
    browser.execute_script("localStorage.clear()")
    open_page(browser, folder.joinpath("index.html").as_uri() + "#samples")
    choose(browser, "f-hl", opposite.replace("_", " "))
    assert count(browser) == 1
    assert errors(browser) == []


def test_untrusted_text_is_shown_as_text_never_run(tmp_path, browser):
    attack = '<img src=x onerror="window.pwned=1"><b id="injected">x</b>'
    made = []
    for r in synthetic_records(8, model=attack, second_judge=0):
        behavior = r.behavior.model_copy(update={"prompt": attack, "category": attack})
        completion = r.completion.model_copy(update={"text": attack})
        made.append(r.model_copy(update={"behavior": behavior, "completion": completion}))
    RecordStore(tmp_path / "run" / "records.jsonl").append(made)
    report.write(made, tmp_path / "run")
    build(load_runs([tmp_path / "run"]), tmp_path / "site")
    open_page(browser, (tmp_path / "site" / "index.html").as_uri() + "#samples")
    wait(lambda: browser.find_elements("css selector", "#samples-table .tabulator-row"))
    browser.find_elements("css selector", "#samples-table .tabulator-row")[0].click()
    wait(lambda: attack in browser.find_element("id", "transcript").text)
    browser.find_element("css selector", "nav button[data-tab=overview]").click()
    assert attack in browser.find_element("id", "overview-table").text
    assert browser.execute_script("return [window.pwned, document.querySelectorAll('#injected').length]") == [None, 0]


# ---- the queue view (blind by default), what the model saw, copies of a run ----

@pytest.fixture(scope="module")
def queued(tmp_path_factory) -> tuple[Path, Path, str]:
    """A run with a queue drawn from it, and a run written before records stored what the model saw."""
    root = tmp_path_factory.mktemp("queued")
    run_folder(root / "runs" / "a", 80, model="synth-a", seed=3)
    run_folder(root / "runs" / "old", 16, model="synth-old", seed=4, stored=False)
    queue, _, _ = write_queue([root / "runs" / "a"], 6, seed=2, out=root / "q.csv")
    build(load_runs([root / "runs"]), root / "site", chunk=32)
    return root, root / "site", queue


def state(browser, expression: str):
    return browser.execute_script(f"return {expression}")


def press(browser, key: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(browser).send_keys(key).perform()


def transcript(browser):
    return browser.find_element("id", "transcript")


def test_the_queue_view_is_blind_by_default_and_its_export_carries_the_queue(queued, browser):
    root, folder, queue = queued
    drawn = {key for _, key in labels.drawn(root / "runs" / "a")}
    for old in browser.downloads.glob("labels-*.json"):
        old.unlink()
    open_page(browser, folder.joinpath("index.html").as_uri())
    browser.execute_script("localStorage.clear()")
    open_page(browser, folder.joinpath("index.html").as_uri())
    wait(lambda: browser.find_elements("css selector", f"button.open-queue[data-queue={queue}]"))[0].click()
    # the queue view: its samples only, "label the queue: i of n", blind
    assert count(browser) == len(drawn) and browser.find_element("id", "blind").is_selected()
    bar = browser.find_element("id", "queue-bar")
    assert bar.is_displayed() and f"label the queue {queue}: 1 of {len(drawn)}" in bar.text
    assert f"0 of {len(drawn)} labelled" in bar.text
    assert state(browser, "VIEW.state.tables.samples.getColumn('v').isVisible()") is False
    assert not browser.find_element("id", "f-verdict").is_enabled()
    wait(lambda: "hidden while you label" in transcript(browser).text)
    assert not transcript(browser).find_elements("css selector", "table.verdicts, #reveal")
    assert f"drawn at random by queue {queue}" in transcript(browser).text
    # label with the keys: 1 = harmful, n = the next unlabelled; the verdicts can be revealed once labelled
    press(browser, "1")
    wait(lambda: f"1 of {len(drawn)} labelled" in bar.text)
    wait(lambda: transcript(browser).find_elements("id", "reveal"))[0].click()
    wait(lambda: transcript(browser).find_elements("css selector", "table.verdicts"))
    press(browser, "n")
    wait(lambda: f": 2 of {len(drawn)}" in bar.text)
    assert not transcript(browser).find_elements("css selector", "table.verdicts")  # the next one is blind again
    press(browser, "2")
    wait(lambda: f"2 of {len(drawn)} labelled" in bar.text)
    # the toggle shows every verdict again
    browser.find_element("id", "blind").click()
    wait(lambda: state(browser, "VIEW.state.tables.samples.getColumn('v').isVisible()"))
    wait(lambda: transcript(browser).find_elements("css selector", "table.verdicts"))
    assert browser.find_element("id", "f-verdict").is_enabled()
    # exported, each label carries its queue and its run folder; imported, they are queued labels
    browser.find_element("css selector", "nav button[data-tab=labels]").click()
    browser.find_element("id", "export").click()
    exported = wait(lambda: [p for p in browser.downloads.glob("labels-*.json")])[0]
    wait(lambda: exported.stat().st_size > 0)
    items = json.loads(exported.read_text())["labels"]
    assert len(items) == 2 and {i["queue"] for i in items} == {queue} and {i["key"] for i in items} <= drawn
    assert {i["folder"] for i in items} == {labels.fingerprint(root / "runs" / "a")}
    assert labels.import_file(exported, [root / "runs"]) == {(root / "runs" / "a").resolve(): (2, 0)}
    stored = [changes[-1] for changes in labels.read(root / "runs" / "a").values()]
    assert sorted((s.queue, s.label) for s in stored) == [(queue, "harmful"), (queue, "not_harmful")]
    exported.unlink()
    assert errors(browser) == []


def test_the_transcript_shows_the_system_turn_the_model_saw(queued, browser):
    _root, folder, _queue = queued
    open_page(browser, folder.joinpath("index.html").as_uri() + "#samples")
    for run, system in (("a", True), ("old", False)):
        choose(browser, "f-run", run)
        wait(lambda: browser.find_elements("css selector", "#samples-table .tabulator-row"))
        browser.find_elements("css selector", "#samples-table .tabulator-row")[0].click()
        wait(lambda: "ASSISTANT" in transcript(browser).text.upper())
        turns = transcript(browser).find_elements("css selector", ".turn.system")
        if system:
            assert len(turns) == 1 and SYSTEM in turns[0].text
            details = transcript(browser).find_element("css selector", "details.rendered")
            details.click()
            assert f"<|im_start|>system\n{SYSTEM}" in details.text
            assert "not stored" not in transcript(browser).text
        else:
            assert not turns and not transcript(browser).find_elements("css selector", "details.rendered")
            assert "system prompt not stored" in transcript(browser).text
    assert errors(browser) == []


def test_two_copies_of_a_run_keep_their_own_labels(tmp_path, browser):
    run = run_folder(tmp_path / "runs" / "a", 24, seed=6)
    shutil.copytree(run, tmp_path / "runs" / "b")
    build(load_runs([tmp_path / "runs"]), tmp_path / "site")
    for old in browser.downloads.glob("labels-*.json"):
        old.unlink()
    open_page(browser, (tmp_path / "site" / "index.html").as_uri() + "#samples")
    browser.execute_script("localStorage.clear()")
    open_page(browser, (tmp_path / "site" / "index.html").as_uri() + "#samples")
    choose(browser, "f-run", "a")
    wait(lambda: browser.find_elements("css selector", "#samples-table .tabulator-row"))
    browser.find_elements("css selector", "#samples-table .tabulator-row")[0].click()
    wait(lambda: browser.find_elements("css selector", "#transcript button[data-label=unclear]"))[0].click()
    choose(browser, "f-run", "any")
    choose(browser, "f-hl", "unclear")
    assert count(browser) == 1  # the copy's same sample has no label
    browser.find_element("css selector", "nav button[data-tab=labels]").click()
    browser.find_element("id", "export").click()
    exported = wait(lambda: [p for p in browser.downloads.glob("labels-*.json")])[0]
    wait(lambda: exported.stat().st_size > 0)
    assert labels.import_file(exported, [tmp_path / "runs"]) == {run.resolve(): (1, 0)}
    assert not (tmp_path / "runs" / "b" / "labels.jsonl").exists()
    exported.unlink()


def test_labels_an_older_page_kept_are_carried_over_to_their_run(site, browser):
    """An older page kept labels by record key alone: they show again, now under their run folder."""
    root, folder = site
    key = records(root, "a")[0].key
    old = {key: {"label": "unclear", "who": "old", "when": "2026-01-01T00:00:00Z", "run": "a"},
           "elsewhere:x:0": {"label": "harmful", "who": "old", "when": "2026-01-01T00:00:00Z", "run": "z"}}
    open_page(browser, folder.joinpath("index.html").as_uri())
    browser.execute_script("localStorage.clear(); localStorage.setItem('harness-view-labels', JSON.stringify(arguments[0]))",
                           old)
    open_page(browser, folder.joinpath("index.html").as_uri() + "#samples")
    choose(browser, "f-hl", "unclear")
    assert count(browser) == 1
    kept = state(browser, "JSON.parse(localStorage.getItem('harness-view-labels/2'))")
    assert [(v["key"], v["folder"], v["label"]) for v in kept.values()] == [
        (key, labels.fingerprint(root / "sweep" / "a"), "unclear")]
    assert state(browser, "JSON.parse(localStorage.getItem('harness-view-labels'))") == {
        "elsewhere:x:0": old["elsewhere:x:0"]}  # another site's labels stay where they were
    browser.execute_script("localStorage.clear()")
