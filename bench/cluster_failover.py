"""How long clients take to find another node when the node that runs the rooms dies, and whether the call notices.

Three `cabine serve --redis` nodes on a private PostgreSQL and Redis, behind HAProxy with deploy/haproxy/cabine.cfg,
a real gateway and the doctor's page in headless Chromium, in a call (tests/cluster_rig.py, as the failover test sets
them up). Each round kills the room node with SIGKILL and times, from the kill:

- another node taking the rooms over (its GET /room-node answers 200);
- the cabin welcomed again by signaling;
- the doctor's page told by the new room node that the cabin is online and the citizen admitted;
- the longest gap in the video frames the page decodes (sampled every 50 ms), beside the same measure over the
  same length of time before the kill: peer to peer, the media should not notice.

The killed node is started again before the next round.

    python bench/cluster_failover.py --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import common

from tests.browser import FRAMES_JS, wait_js
from tests.cluster_rig import BACK_IN_THE_ROOM_JS, cluster_call, until
from tests.postgres import PrivatePostgres
from tests.redis_server import PrivateRedis


async def frame_gap(page: Any, seconds: float) -> float:
    """The longest time (ms) without a new decoded frame on the page, sampled every 50 ms for `seconds`."""
    last_count, last_change, longest = -1, time.monotonic(), 0.0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        count = int(await page.evaluate(FRAMES_JS))
        now = time.monotonic()
        if count != last_count:
            longest = max(longest, now - last_change)
            last_count, last_change = count, now
        await asyncio.sleep(0.05)
    return max(longest, time.monotonic() - last_change) * 1000


async def run(rounds: int, work: Path) -> list[dict[str, float]]:
    results: list[dict[str, float]] = []
    with PrivatePostgres() as pg, PrivateRedis() as redis:
        async with cluster_call(work, pg.database(), redis.url) as call:
            page, gateway = call.page, call.gateway
            for round_ in range(rounds):
                baseline_gap = await frame_gap(page, 6.0)
                welcome = gateway.welcome
                victim, killed = await call.kill_room_node()
                gap = asyncio.create_task(frame_gap(page, 6.0))
                elected = await until(lambda: len(call.room_nodes()) == 1, timeout=30, what="another room node")
                cabin_back = (
                    time.monotonic()
                    - killed
                    + await until(
                        lambda welcome=welcome: gateway.connected.is_set() and gateway.welcome is not welcome,
                        timeout=30,
                        what="the cabin back",
                    )
                )
                await wait_js(page, BACK_IN_THE_ROOM_JS, timeout=30, what="the page back in the room")
                page_back = time.monotonic() - killed
                entry = {
                    "elected_s": elected,
                    "cabin_back_s": cabin_back,
                    "page_back_s": page_back,
                    "frame_gap_ms": await gap,
                    "frame_gap_before_ms": baseline_gap,
                }
                results.append(entry)
                print(
                    f"round {round_ + 1}: another room node after {elected:.2f} s, cabin back {cabin_back:.2f} s, "
                    f"page back in its room {page_back:.2f} s; longest frame gap {entry['frame_gap_ms']:.0f} ms "
                    f"(before the kill: {baseline_gap:.0f} ms)",
                    flush=True,
                )
                # The killed node comes back (as systemd would restart it) for the next round.
                await call.restart(victim)
                await call.all_ready()
            assert await page.locator("body").get_attribute("data-state") == "inCall"
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="room nodes killed, one after the other (default 5)")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds is at least 1")
    network = common.isolate_loopback()
    print(f"network: {network}")
    with tempfile.TemporaryDirectory(prefix="cabine-failover-") as tmp:
        rounds = asyncio.run(run(args.rounds, Path(tmp)))
    keys = ("elected_s", "cabin_back_s", "page_back_s", "frame_gap_ms", "frame_gap_before_ms")
    rows = []
    for key in keys:
        s = common.summarize([r[key] for r in rounds])
        rows.append([key, s["p50"], s["min"], s["max"]])
    title = f"The room node killed mid-call, {len(rounds)} rounds (from the kill)"
    common.print_table(title, ["measure", "median", "min", "max"], rows)
    common.write_results("cluster_failover", {"rounds": rounds, "machine": common.machine_info(), "network": network})


if __name__ == "__main__":
    main()
