"""Calls across real networks: link cuts and gateway crashes on the network laboratory (tests/netlab).

One relay-only call: the cabin (`cabine gateway`, its own process) behind its 4G router's symmetric NAT, the doctor's
Chromium behind a hospital firewall that lets only TCP 443 out, coturn between them (tests/networkrig.py). The
emulated thermometer takes a reading every 1.5 s for the whole run. A page-side monitor on the doctor's page stamps
(Date.now(), the same wall clock as this process and the gateway's log) every state change of the page and every
time video starts flowing again on a peer connection (frames decoded increasing after more than 0.5 s without).

    python bench/network.py cuts             # 20 cuts of 5 s, 6 s of good link between them
    python bench/network.py cuts --cuts 5 --cut-seconds 3
    python bench/network.py kill             # the gateway killed with SIGKILL and restarted at once, 5 times
    python bench/network.py profiles         # 4G good / 4G poor / ADSL uplink, Cabine beside browser to browser

Per cut: detection on the doctor's page (its state becomes "reconnecting"), detection on the cabin (the gateway's
log line "nothing from the professional for"), recovery (from the link's return to video flowing again on the
doctor's page). Per kill: from the kill to video again. At the end: readings lost (triggered, never shown) and
duplicated (the same seq shown twice). Profiles: see bench/network_profiles.py. Needs root, ip, nft, tc, turnserver,
setpriv, chromium.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import re
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import common
import network_profiles
from playwright.async_api import Page

from tests.networkrig import READINGS_JS, NetworkCall, admit, doctor_joined, network_call, wait_for

TRIGGER_EVERY = 1.5
LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*nothing from the professional for ([\d.]+) s")

# Installed once the call is up: records page states and video (re)starts, with wall-clock stamps.
MONITOR_JS = """() => {
  if (window.__net) return;
  const net = window.__net = {states: [], resumes: [], pcs: 0};
  let lastState = null, busy = false;
  const frames = new Map();  // pc id -> {frames, increasedAt}
  setInterval(async () => {
    const now = Date.now();
    const s = document.body.dataset.state;
    if (s !== lastState) { net.states.push([now, s]); lastState = s; }
    const pc = window.cabine.pc;
    if (!pc || busy) return;
    if (pc.__netId === undefined) pc.__netId = ++net.pcs;
    busy = true;
    try {
      let decoded = 0;
      (await pc.getStats()).forEach((r) => {
        if (r.type === "inbound-rtp" && r.kind === "video") decoded = r.framesDecoded || 0;
      });
      const at = Date.now();
      const seen = frames.get(pc.__netId) ?? {frames: 0, increasedAt: null};
      if (decoded > seen.frames) {
        if (seen.increasedAt === null || at - seen.increasedAt > 500) net.resumes.push([at, pc.__netId, decoded]);
        seen.increasedAt = at;
      }
      seen.frames = decoded;
      frames.set(pc.__netId, seen);
    } finally { busy = false; }
  }, 20);
}"""


# --- the doctor's page (as tests/test_networks.py) ---------------------------------------------------------------


@contextlib.asynccontextmanager
async def doctor(call: NetworkCall, workdir: Path) -> AsyncIterator[Page]:
    """The doctor's Chromium in the doctor's namespace, on the link, joined, the citizen admitted, video flowing."""
    async with doctor_joined(call, workdir / "doctor-profile") as page:
        await admit(page)
        await page.evaluate(MONITOR_JS)
        yield page


async def monitor(page: Page) -> dict[str, Any]:
    result: dict[str, Any] = await page.evaluate("window.__net")
    return result


async def video_flowing(page: Page, timeout: float = 30) -> None:
    async def flowing() -> bool:
        return bool((await monitor(page))["resumes"])

    await wait_for(flowing, timeout=timeout, what="video on the doctor's page")


async def first_resume_after(page: Page, since: float, timeout: float) -> tuple[float, int] | None:
    """(wall-clock seconds, peer connection number) of the first video resumption after `since`, or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for at, pc_id, _ in (await monitor(page))["resumes"]:
            if at / 1000 > since:
                return at / 1000, int(pc_id)
        await asyncio.sleep(0.05)
    return None


def first_state_after(net: dict[str, Any], state: str, since: float) -> float | None:
    for at, s in net["states"]:
        if s == state and at / 1000 >= since:
            return float(at) / 1000
    return None


def cabin_detections(call: NetworkCall) -> list[tuple[float, float]]:
    """(wall-clock seconds, silence the gateway reported) of every "nothing from the professional" line."""
    out = []
    for line in call.gateway_log().splitlines():
        match = LOG_LINE.match(line)
        if match:
            stamp = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()  # local time, as logged
            out.append((stamp, float(match.group(2))))
    return out


# --- readings ------------------------------------------------------------------------------------------------------


class Thermometer:
    """The citizen's thermometer, used every TRIGGER_EVERY seconds while the benchmark runs."""

    def __init__(self, call: NetworkCall) -> None:
        self.call = call
        self.triggers: list[tuple[float, bool]] = []  # (wall clock, a central was subscribed)
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            subscribed = self.call.radio.subscribed("thermometer")
            self.call.radio.trigger("thermometer")
            self.triggers.append((time.time(), subscribed))
            await asyncio.sleep(TRIGGER_EVERY)

    async def start(self) -> None:
        await wait_for(lambda: self.call.radio.subscribed("thermometer"), timeout=20, what="the thermometer")
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def settle_readings(page: Page, expected: int, timeout: float = 30) -> list[dict[str, Any]]:
    """The page's readings once it shows `expected` (or `timeout` passed with none new for 5 s)."""
    deadline = time.monotonic() + timeout
    last, last_change = -1, time.monotonic()
    while True:
        readings: list[dict[str, Any]] = list(await page.evaluate(READINGS_JS))
        if len(readings) != last:
            last, last_change = len(readings), time.monotonic()
        if len(readings) >= expected or time.monotonic() > deadline or time.monotonic() - last_change > 5 + 2:
            if len(readings) >= expected:
                await asyncio.sleep(2)  # a duplicate would come right after
                readings = list(await page.evaluate(READINGS_JS))
            return readings
        await asyncio.sleep(0.2)


def reading_figures(triggers: int, readings: list[dict[str, Any]]) -> dict[str, Any]:
    seqs = Counter(r["seq"] for r in readings)
    stamps = Counter((r["kind"], r["at"]) for r in readings)
    return {
        "triggered": triggers,
        "shown": len(readings),
        "unique_seqs": len(seqs),
        "lost": max(0, triggers - len(seqs)),
        "duplicated_by_seq": sum(n - 1 for n in seqs.values()),
        "duplicated_by_measured_at": sum(n - 1 for n in stamps.values()),
        "in_order": [r["seq"] for r in readings] == sorted(r["seq"] for r in readings),
    }


# --- modes ---------------------------------------------------------------------------------------------------------


def stats(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "median": common.percentile(values, 50),
        "p90": common.percentile(values, 90),
        "max": max(values),
        "min": min(values),
    }


async def run_cuts(call: NetworkCall, page: Page, args: argparse.Namespace) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for i in range(args.cuts):
        pcs_before = (await monitor(page))["pcs"]
        cut_at = time.time()
        flip_on = await call.lab.cut(True)
        await asyncio.sleep(max(0.0, cut_at + args.cut_seconds - time.time()))
        back_at = time.time()
        flip_off = await call.lab.cut(False)
        resume = await first_resume_after(page, back_at, timeout=60)
        net = await monitor(page)
        doctor_seen = first_state_after(net, "reconnecting", cut_at)
        in_call = first_state_after(net, "inCall", back_at)
        cabin_seen = next((s for s, _ in cabin_detections(call) if s >= cut_at - 0.001), None)
        row = {
            "cut": i + 1,
            "doctor_detect_s": None if doctor_seen is None or doctor_seen > back_at else doctor_seen - cut_at,
            "cabin_detect_s": None if cabin_seen is None or cabin_seen > back_at + 1 else cabin_seen - cut_at,
            "recovery_s": None if resume is None else resume[0] - back_at,
            "in_call_s": None if in_call is None else in_call - back_at,
            "new_pc": None if resume is None else resume[1] > pcs_before,
            "nft_flip_ms": [round(flip_on * 1000, 1), round(flip_off * 1000, 1)],
        }
        rows.append(row)
        print(
            f"cut {i + 1:2d}: doctor {common.fmt(row['doctor_detect_s'], 2)} s, cabin "
            f"{common.fmt(row['cabin_detect_s'], 2)} s, video back {common.fmt(row['recovery_s'], 2)} s "
            f"(new pc: {row['new_pc']})",
            flush=True,
        )
        # Good link until `good_seconds` after the return, and at least 2 s of video before the next cut.
        until = max(back_at + args.good_seconds, (resume[0] if resume else time.time()) + 2)
        await asyncio.sleep(max(0.0, until - time.time()))
    return {"cuts": rows}


async def run_kills(call: NetworkCall, page: Page, args: argparse.Namespace) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for i in range(args.kills):
        pcs_before = (await monitor(page))["pcs"]
        killed_at = time.time()
        await call.kill_gateway()
        await call.start_gateway()
        started = time.time() - killed_at
        resume = await first_resume_after(page, killed_at + 0.6, timeout=90)
        net = await monitor(page)
        doctor_seen = first_state_after(net, "reconnecting", killed_at)
        row = {
            "kill": i + 1,
            "restart_s": started,
            "doctor_detect_s": None if doctor_seen is None else doctor_seen - killed_at,
            "video_again_s": None if resume is None else resume[0] - killed_at,
            "new_pc": None if resume is None else resume[1] > pcs_before,
            "page_states": [st for at, st in net["states"] if at / 1000 >= killed_at],
        }
        rows.append(row)
        print(
            f"kill {i + 1}: gateway restarted in {row['restart_s']:.2f} s, doctor saw 'reconnecting' after "
            f"{common.fmt(row['doctor_detect_s'], 2)} s, video again {common.fmt(row['video_again_s'], 2)} s "
            f"after the kill (new pc: {row['new_pc']}; page states {row['page_states']})",
            flush=True,
        )
        until = (resume[0] if resume else time.time()) + args.good_seconds
        await asyncio.sleep(max(0.0, until - time.time()))
    return {"kills": rows}


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        if args.workdir is not None:
            workdir = args.workdir
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cabine-bench-net-")))
        if args.mode == "profiles":
            return await network_profiles.run(workdir, args)
        async with network_call(workdir) as call:
            await call.start_gateway()
            async with doctor(call, workdir) as page:
                await video_flowing(page)
                thermometer = Thermometer(call)
                await thermometer.start()
                await asyncio.sleep(3)  # a few readings on a good link first
                try:
                    runner = {"cuts": run_cuts, "kill": run_kills}[args.mode]
                    body = await runner(call, page, args)
                finally:
                    await thermometer.stop()
                readings = await settle_readings(page, len(thermometer.triggers))
                body["readings"] = reading_figures(len(thermometer.triggers), readings)
                body["readings"]["triggered_while_unsubscribed"] = sum(1 for _, s in thermometer.triggers if not s)
                # Taken but never confirmed by a central: still in the thermometer's memory (not lost, not sent).
                body["readings"]["still_in_device"] = len(list(call.radio.device("thermometer").pending()))
                body["gateway_log_lines"] = len(call.gateway_log().splitlines())
        return body


def report(args: argparse.Namespace, body: dict[str, Any]) -> None:
    if args.mode == "profiles":
        network_profiles.report(args, body)
        return
    rows = body.get("cuts") or body.get("kills") or []
    cut_keys = [
        ("doctor_detect_s", "detection, doctor's page"),
        ("cabin_detect_s", "detection, cabin (log)"),
        ("recovery_s", "link back -> video again"),
        ("in_call_s", "link back -> page 'inCall'"),
    ]
    kill_keys = [("doctor_detect_s", "kill -> doctor's 'reconnecting'"), ("video_again_s", "kill -> video again")]
    keys = cut_keys if args.mode == "cuts" else kill_keys
    summary = {}
    table = []
    for key, label in keys:
        values = [r[key] for r in rows if r[key] is not None]
        summary[key] = s = stats(values)
        missed = len(rows) - len(values)
        table.append([label, s["n"], s.get("median"), s.get("p90"), s.get("max"), missed])
    common.print_table(
        f"{args.mode}: seconds ({len(rows)} events)",
        ["figure", "n", "median", "p90", "max", "missed"],
        [[r[0], r[1], *(common.fmt(v, 2) for v in r[2:5]), r[5]] for r in table],
    )
    new_pcs = sum(1 for r in rows if r.get("new_pc"))
    print(f"recoveries on a new peer connection: {new_pcs}/{len(rows)}")
    rd = body["readings"]
    print(
        f"readings: {rd['triggered']} triggered ({rd['triggered_while_unsubscribed']} while no central was "
        f"subscribed), {rd['shown']} shown, {rd['lost']} lost, {rd['duplicated_by_seq']} duplicated (by seq), "
        f"{rd['duplicated_by_measured_at']} duplicated (by measurement time), in order: {rd['in_order']}, "
        f"{rd['still_in_device']} still in the thermometer's memory"
    )
    body["summary"] = summary
    body["options"] = vars(args)
    body["machine"] = common.machine_info()
    name = f"network-{args.mode}"
    common.write_results(name, body)
    # Also under a fixed name (what the notes point to).
    (common.RESULTS / f"{name}.json").write_text(json.dumps(body, indent=2, default=str))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["cuts", "kill", "profiles"])
    parser.add_argument("--cuts", type=int, default=20, help="cuts of the cabin's link (default 20)")
    parser.add_argument("--cut-seconds", type=float, default=5.0, help="length of a cut (default 5)")
    parser.add_argument(
        "--good-seconds", type=float, default=6.0, help="good link after a cut or a recovery (default 6)"
    )
    parser.add_argument("--kills", type=int, default=5, help="gateway kills (default 5)")
    parser.add_argument("--profile-seconds", type=float, default=60, help="measuring window per profile (default 60)")
    parser.add_argument("--settle-seconds", type=float, default=10, help="after shaping, before measuring (default 10)")
    parser.add_argument("--workdir", help="keep the laboratory's files (logs) here instead of a temporary folder")
    args = parser.parse_args()
    if args.workdir is not None:
        args.workdir = Path(args.workdir).resolve()
        args.workdir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.WARNING)
    body = asyncio.run(main_async(args))
    report(args, body)


if __name__ == "__main__":
    main()
