"""Results browser at scale: build time and page load times in headless Chromium, 1k / 10k / 100k records.

    python bench/view.py [--sizes 1000 10000 100000] [--repeats 5]

For each size: a sweep of 4 synthetic run folders (harness.view.synthetic: records of the
harness's own types, ~20 % also carrying an older second judge's verdict, tables by
harness.analysis.report), then `load_runs` + `build` timed (`--build-repeats` times), then the site
opened from disk in headless Chromium (fresh load each repeat) and timed in the page
(performance.now): until the overview is drawn (data/meta.js + data/index.js parsed), until
the Samples tab shows its first page with snippets, until a verdict filter over every sample
has redrawn the table, and a free-text search that loads every transcript chunk.
Writes results/bench/view.json and .md.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from common import write

from harness.view.collect import load_runs
from harness.view.site import build
from harness.view.synthetic import run_folder

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1400,900")

FIRST_PAGE = """const done = arguments[arguments.length - 1], t0 = performance.now();
document.querySelector('nav button[data-tab=samples]').click();
(function poll() {
  const cell = document.querySelector('#samples-table .tabulator-row .tabulator-cell[tabulator-field=completion]');
  if (cell && cell.textContent && !cell.textContent.includes('\u2026')) done(performance.now() - t0); else setTimeout(poll, 2);
})();"""

FILTER = """const done = arguments[arguments.length - 1], t0 = performance.now(), s = document.getElementById('f-verdict');
s.value = '1'; s.dispatchEvent(new Event('change'));
const sync = performance.now() - t0;
(function poll() {
  const rows = document.querySelectorAll('#samples-table .tabulator-row .badge.v1');
  const all = document.querySelectorAll('#samples-table .tabulator-row');
  if (all.length && rows.length >= all.length) done([sync, performance.now() - t0]); else setTimeout(poll, 2);
})();"""

SEARCH = """const done = arguments[arguments.length - 1], t0 = performance.now(), box = document.getElementById('f-text');
box.value = 'guide number 7'; box.dispatchEvent(new Event('change'));
(function poll() {
  const count = document.getElementById('count').textContent;
  if (!count.startsWith('searching')) done([performance.now() - t0, count]); else setTimeout(poll, 5);
})();"""


def chrome():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}")
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_script_timeout(600)
    return driver


def page_times(driver, url: str, repeats: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"ready_ms": [], "first_page_ms": [], "filter_sync_ms": [], "filter_ms": [],
                                     "search_ms": []}
    for i in range(repeats):
        driver.get("about:blank")
        driver.get(url)
        end = time.monotonic() + 120
        while not driver.execute_script("return document.body.dataset.ready === '1'"):
            if time.monotonic() > end:
                raise RuntimeError(f"{url} did not load")
            time.sleep(0.01)
        times["ready_ms"].append(driver.execute_script("return performance.getEntriesByName('view-ready')[0].startTime"))
        times["first_page_ms"].append(driver.execute_async_script(FIRST_PAGE))
        sync, redrawn = driver.execute_async_script(FILTER)
        times["filter_sync_ms"].append(sync)
        times["filter_ms"].append(redrawn)
        if i == 0:  # one search per size: it reads every chunk
            times["search_ms"].append(driver.execute_async_script(SEARCH)[0])
    return times


def size_of(folder: Path, pattern: str = "**/*") -> float:
    return sum(p.stat().st_size for p in folder.glob(pattern) if p.is_file()) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--build-repeats", type=int, default=3)
    args = parser.parse_args()
    rows = []
    driver = chrome()
    try:
        for n in args.sizes:
            root = Path(tempfile.mkdtemp(prefix=f"view-bench-{n}-"))
            for i in range(4):
                run_folder(root / "sweep" / f"run{i}", n // 4, model=f"synth-{i}", seed=i)
            load_s, build_s = [], []
            for _ in range(args.build_repeats):
                start = time.perf_counter()
                runs = load_runs([root / "sweep"])
                load_s.append(time.perf_counter() - start)
                start = time.perf_counter()
                summary = build(runs, root / "site")
                build_s.append(time.perf_counter() - start)
            site = root / "site"
            times = page_times(driver, site.joinpath("index.html").as_uri(), args.repeats)
            row = {"records": summary["samples"], "read_s": statistics.median(load_s), "write_s": statistics.median(build_s),
                   "site_mb": size_of(site), "index_mb": size_of(site / "data", "index.js"),
                   "chunks": summary["chunks"]}
            for name, values in times.items():
                row[name] = statistics.median(values)
                row[name.replace("_ms", "_max_ms")] = max(values) if name != "search_ms" else values[0]
            row.pop("search_max_ms", None)
            rows.append(row)
            print(row, flush=True)
    finally:
        driver.quit()
    base = rows[0]
    for row in rows:
        row["ready_vs_smallest"] = row["ready_ms"] / base["ready_ms"]
        row["first_page_vs_smallest"] = row["first_page_ms"] / base["first_page_ms"]
    largest = rows[-1]
    summary = {"records": largest["records"], "build_s": largest["read_s"] + largest["write_s"],
               "ready_ms": largest["ready_ms"], "first_page_ms": largest["first_page_ms"],
               "filter_ms": largest["filter_ms"], "search_s": largest["search_ms"] / 1000,
               "repeats": args.repeats, "build_repeats": args.build_repeats}
    notes = (f"Medians over {args.repeats} fresh page loads (max beside them) and {args.build_repeats} builds; one "
             "search per size. Headless Debian Chromium, file:// site, 2 shared CPU cores (other jobs running, so "
             "absolute times are noisy; the ratios to the smallest size are the comparison). read_s: parsing "
             "records.jsonl with every judge's verdict; write_s: writing the site. ready: meta + index parsed and "
             "the overview drawn; first_page: Samples tab until its first 50 rows show prompt and completion "
             "snippets (their transcript chunks loaded); filter: verdict filter over every sample until the "
             "table has redrawn (filter_sync: the filtering itself); search: free text over every transcript chunk.")
    print(write("view", rows, summary, notes))


if __name__ == "__main__":
    main()
