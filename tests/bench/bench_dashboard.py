"""The dashboard's first load over a large archive, in a real headless Chromium: the runs list (the
entry page), a run's page and the costs page, each loaded `--loads` times in a fresh browser context (no
cache, no cookie: every load is a first load), with the browser's own Navigation Timing figures.

Run: .venv/bin/python -m tests.bench.bench_dashboard [--runs 100000] [--loads 5] [--screenshots docs/images]

The archive is filled as tests/bench/bench_read_api.py fills it (20 namespaces, 50 users, 4 models,
completions over 90 days, two calls a run). `jesus api --local` serves it (no sign-in: in a cluster a
page costs the same plus the caller's cached reviews). Chromium is Debian's (/usr/bin/chromium), on the
same machine as the server and the database, so the figures include both.

Per page: the document's request to the end of its response (the server's part), navigation start to
DOMContentLoaded and to load (the median and the slowest of the loads),
the HTML's bytes on the wire and in all (the document with its stylesheet and script), and the
number of requests.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
from pathlib import Path
from typing import Any

from tests.bench.bench_read_api import fill, serve, wait_ready

from jesus.devcluster.controlplane import free_port

CHROMIUM = "/usr/bin/chromium"
TIMING = """() => {
  const [nav] = performance.getEntriesByType("navigation");
  const resources = performance.getEntriesByType("resource");
  return {
    server: nav.responseEnd - nav.requestStart,
    dcl: nav.domContentLoadedEventEnd - nav.startTime,
    load: nav.loadEventEnd - nav.startTime,
    html: nav.transferSize,
    total: nav.transferSize + resources.reduce((sum, r) => sum + r.transferSize, 0),
    requests: 1 + resources.length,
  };
}"""


def measure(
    base: str, paths: dict[str, str], loads: int, screenshots: Path | None
) -> dict[str, list[dict[str, Any]]]:
    from playwright.sync_api import sync_playwright

    found: dict[str, list[dict[str, Any]]] = {name: [] for name in paths}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            for _ in range(loads):
                for name, path in paths.items():
                    context = browser.new_context()  # a first load: no cache, no cookie
                    page = context.new_page()
                    page.goto(base + path, wait_until="load")
                    found[name].append(page.evaluate(TIMING))
                    context.close()
            if screenshots is not None:  # the costs page over a big archive (docs/images)
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(base + paths["costs"], wait_until="load")
                page.screenshot(path=str(screenshots / "dashboard-costs.png"), full_page=True)
        finally:
            browser.close()
    return found


def report(name: str, samples: list[dict[str, Any]]) -> str:
    def spread(key: str) -> str:
        values = [s[key] for s in samples]
        return f"median {statistics.median(values):.0f} ms, slowest {max(values):.0f} ms"

    last = samples[-1]
    return (
        f"  {name:<6} HTML request to response end {spread('server')}; DOMContentLoaded {spread('dcl')}; "
        f"load {spread('load')}; "
        f"HTML {last['html']:,} B, all {last['total']:,} B in {last['requests']} requests"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--screenshots", type=Path, help="write the costs page's screenshot to this folder")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    try:
        url = f"sqlite:///{folder / 'archive.db'}"
        names = asyncio.run(fill(url, args.runs, args.seed))
        namespace, name = names[len(names) // 2]
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = folder / "api.log"
        server = serve(url, port, log)
        try:
            asyncio.run(wait_ready(base, server, log))
            paths = {
                "runs": "/ui/runs",
                "run": f"/ui/runs/{namespace}/{name}",
                "costs": "/ui/costs?groupBy=team&days=30&to=2026-11-30",
            }
            results = measure(base, paths, args.loads, args.screenshots)
            print(f"{args.runs} archived runs, {args.loads} first loads of each page in headless Chromium")
            for page_name, samples in results.items():
                print(report(page_name, samples))
        finally:
            server.terminate()
            server.wait(10)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
