"""Link to first frame: opening the doctor's link to the first frame of the cabin shown, over repeated joins.

The Cabine demo runs in this process (640x480, admission automatic). Each join opens the link in a new tab of one
headless Chromium, presses "Rejoindre" as a doctor would, and takes the first requestVideoFrameCallback on the
cabin's video; the time is measured from the navigation's start (performance.timeOrigin), so it includes loading
the page, the click, signaling, ICE, DTLS and the first decoded frame. The tab is then closed and the gateway
ends the call before the next join. The same joins against the bare aiortc peer and its minimal page (no click)
give the baseline.

    python bench/first_frame.py              # 12 joins each
    python bench/first_frame.py --joins 50
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import common
from bare_peer import bare_peer

from cabine.demo.run import run_demo

# Installed before the page's own scripts: note when the cabin's video shows its first frame.
FIRST_FRAME_INIT = """
window.benchFirstFrame = null;
document.addEventListener("DOMContentLoaded", () => {
  const video = document.getElementById("remote");
  video.requestVideoFrameCallback((now, meta) => {
    window.benchFirstFrame = {presented: meta.presentationTime, expectedDisplay: meta.expectedDisplayTime,
                              callback: now, width: meta.width};
  });
});
"""


async def first_frame(page: Any) -> dict[str, Any]:
    await page.wait_for_function("() => window.benchFirstFrame !== null", timeout=30_000)
    result: dict[str, Any] = await page.evaluate("window.benchFirstFrame")
    return result


async def joins_cabine(browser: Any, joins: int, data_dir: Path) -> list[dict[str, Any]]:
    options = common.demo_options(data_dir=data_dir)
    out = []
    async with run_demo(options) as demo:
        for _ in range(joins):
            page = await browser.new_page()
            await page.add_init_script(FIRST_FRAME_INIT)
            await common.open_doctor_link(page, demo.doctor_link)
            out.append(await first_frame(page))
            await page.close()
            deadline = time.monotonic() + 15
            while demo.gateway.sessions and time.monotonic() < deadline:  # noqa: ASYNC110 (the gateway has no event)
                await asyncio.sleep(0.02)
    return out


async def joins_aiortc(browser: Any, joins: int) -> list[dict[str, Any]]:
    out = []
    async with bare_peer() as served:
        for _ in range(joins):
            page = await browser.new_page()
            await page.add_init_script(FIRST_FRAME_INIT)
            await page.goto(f"{served.base_url}/static/bench/receiver.html?peer=aiortc&codec=vp8")
            out.append(await first_frame(page))
            await page.close()
    return out


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="cabine-bench-") as tmp:
        async with common.chromium(Path(tmp) / "profile") as browser:
            # One throw-away join warms Chromium's WebRTC stack up for both, so that neither gets the cold start.
            await joins_aiortc(browser, 1)
            results["cabine"] = await joins_cabine(browser, args.joins, Path(tmp) / "data")
            results["aiortc"] = await joins_aiortc(browser, args.joins)
    return results


def main() -> None:
    network = common.isolate_loopback()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--joins", type=int, default=12, help="joins per system (default 12)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(f"network: {network}")
    raw = asyncio.run(main_async(args))
    summary = {system: common.summarize([j["presented"] for j in joins]) for system, joins in raw.items()}
    rows = [[s, *[summary[s].get(k) for k in ("n", "mean", "p50", "p99", "min", "max")]] for s in summary]
    base = summary["aiortc"]["p50"]
    rows = [[*row, f"{summary[row[0]]['p50'] / base:.2f}"] for row in rows]
    common.print_table(
        "Link to first frame (ms from navigation start to the first frame shown)",
        ["system", "joins", "mean", "p50", "p99", "min", "max", "p50 x aiortc"],
        rows,
    )
    common.write_results(
        "first_frame", {"summary": summary, "raw": raw, "machine": common.machine_info(), "network": network}
    )


if __name__ == "__main__":
    main()
