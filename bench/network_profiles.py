"""Link profiles, Cabine beside a browser-to-browser call on the same shaped link (`python bench/network.py profiles`).

The network laboratory of tests/netlab: the cabin behind its 4G router's symmetric NAT, the doctor behind a hospital
firewall that lets only TCP 443 out, coturn between them, relay only. Each profile shapes the cabin's access link
in both directions: rate (tbf, up and down), random loss (nftables, both ways) and one-way delay plus jitter (the
cabin's forwarder in front of TURN, each way). The doctor's hospital link is left as it is.

1. Cabine: `cabine gateway` in the cabin's namespace (stamped 640x480@30 test pattern, emulated thermometer used
   every 1.5 s), the doctor's page in a Chromium in the doctor's namespace.
2. The baseline, once Cabine's call is over: a Chromium in the cabin's namespace sends the same stamped pattern
   (canvas captureStream, 640x480@30) and a fake microphone to a Chromium in the doctor's namespace, relayed by the
   same coturn on the same routes, with a data channel carrying a stamped message every 1.5 s.

Per profile and system, from the receiver's getStats (the doctor's side, i.e. the cabin's uplink): freezes and freeze
seconds per minute, median frames per second, frame sizes, concealed audio samples; glass-to-glass (the stamp read
back on the doctor's page, bench/glass_to_glass.py's method); vitals latency (Cabine: the thermometer's trigger to
the reading on the doctor's page; baseline: send to arrival of the stamped message), p50 and p99.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import common
from playwright.async_api import BrowserContext, Page

from tests.netlab import SIDES, TURN_IP, TURN_PORT, TURN_TLS_PORT, Role, Side
from tests.networkrig import (
    READINGS_JS,
    NetworkCall,
    admit,
    chromium_in_namespace,
    doctor_joined,
    network_call,
    wait_for,
)

SIZE = (640, 480)
TRIGGER_EVERY = 1.5
BENCH_ORIGIN = "https://bench.cabine.test"  # served by Playwright's routing from webclient/bench (no network)

# name: (RTT ms, loss %, uplink kbit/s, downlink kbit/s, jitter ms); one-way delay = RTT / 2, each way.
PROFILES: dict[str, tuple[float, float, int, int, float | None]] = {
    "4G good": (50, 0.5, 5000, 5000, None),
    "4G poor": (150, 3.0, 1000, 1000, 30),
    "ADSL uplink": (40, 0.1, 600, 8000, None),
}

STATS_JS = """async (which) => {
  const pc = window[which].pc;
  const out = {video: null, audio: null, rtt: null};
  (await pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") out.video = {
      freezeCount: s.freezeCount ?? 0, totalFreezesDuration: s.totalFreezesDuration ?? 0,
      framesPerSecond: s.framesPerSecond ?? null, frameWidth: s.frameWidth ?? null, frameHeight: s.frameHeight ?? null,
      packetsLost: s.packetsLost ?? 0, packetsReceived: s.packetsReceived ?? 0};
    if (s.type === "inbound-rtp" && s.kind === "audio") out.audio = {
      concealedSamples: s.concealedSamples ?? 0, totalSamplesReceived: s.totalSamplesReceived ?? 0};
    if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") out.rtt = s.currentRoundTripTime ?? null;
  });
  return out;
}"""

GLASS_JS = """async ([which, frames, timeoutMs]) => {
  const stamp = await import("/static/bench/stamp.js");
  const r = await stamp.measureGlassToGlass(document.getElementById("remote"), window[which].pc,
    {frames, warmup: 30, timeoutMs});
  return {reason: r.reason, latencies: r.latencies, unreadable: r.unreadable, width: r.width, height: r.height};
}"""

# On the doctor's page: when each reading appears ([seq, Date.now()]), polled every 10 ms.
ARRIVALS_JS = """() => {
  if (window.__arrivals) return;
  const arrivals = window.__arrivals = [];
  const seen = new Set();
  setInterval(() => {
    for (const r of window.cabine.vitals.readings) {
      if (!seen.has(r.seq)) { seen.add(r.seq); arrivals.push([r.seq, Date.now()]); }
    }
  }, 10);
}"""


async def serve_bench(context: BrowserContext) -> None:
    """webclient/bench/* at BENCH_ORIGIN and under any page's /static/bench/, from the checkout."""

    async def fulfil(route: Any) -> None:
        name = route.request.url.split("?", 1)[0].rsplit("/", 1)[1]
        path = common.WEBCLIENT / "bench" / name
        if not path.is_file():
            await route.fulfill(status=404, body="not found")
            return
        kind = "text/html" if name.endswith(".html") else "text/javascript"
        await route.fulfill(path=str(path), content_type=kind)

    await context.route(f"{BENCH_ORIGIN}/**", fulfil)
    await context.route("**/static/bench/*", fulfil)


@contextlib.asynccontextmanager
async def browser_in(call: NetworkCall, role: Role, profile: Path) -> AsyncIterator[BrowserContext]:
    """A headless Chromium inside `role`'s namespace, serving the benchmark's pages."""
    async with chromium_in_namespace(call, role, profile) as context:
        await serve_bench(context)
        yield context


async def shape(call: NetworkCall, name: str) -> None:
    rtt, loss, up, down, jitter = PROFILES[name]
    await call.lab.shape(
        Side.CABIN, rate_kbit=up, down_rate_kbit=down, loss_pct=loss, delay_ms=rtt / 2, jitter_ms=jitter
    )


def _stats(values: list[float]) -> dict[str, float | None]:
    return {
        "n": len(values),
        "mean": sum(values) / len(values) if values else None,
        "p50": common.percentile(values, 50) if values else None,
        "p99": common.percentile(values, 99) if values else None,
    }


async def measure(
    page: Page,
    which: str,
    seconds: float,
    vitals: Callable[[], Awaitable[list[float]]],
) -> dict[str, Any]:
    """The receiver's figures over `seconds`, then glass-to-glass on 150 frames, and the vitals latencies (ms)."""
    start = await page.evaluate(STATS_JS, which)
    fps: list[float] = []
    sizes: list[str] = []
    rtts: list[float] = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        await asyncio.sleep(2)
        sample = await page.evaluate(STATS_JS, which)
        video = sample["video"] or {}
        if video.get("framesPerSecond") is not None:
            fps.append(video["framesPerSecond"])
        if video.get("frameWidth"):
            sizes.append(f"{video['frameWidth']}x{video['frameHeight']}")
        if sample["rtt"] is not None:
            rtts.append(sample["rtt"] * 1000)
    end = await page.evaluate(STATS_JS, which)
    minutes = (time.monotonic() - t0) / 60
    v0, v1, a0, a1 = start["video"], end["video"], start["audio"], end["audio"]
    samples = a1["totalSamplesReceived"] - a0["totalSamplesReceived"]
    lost = v1["packetsLost"] - v0["packetsLost"]
    received = v1["packetsReceived"] - v0["packetsReceived"]
    glass = await page.evaluate(GLASS_JS, [which, 150, 60_000])
    return {
        "freezes_per_min": (v1["freezeCount"] - v0["freezeCount"]) / minutes,
        "freeze_s_per_min": (v1["totalFreezesDuration"] - v0["totalFreezesDuration"]) / minutes,
        "fps_median": common.percentile(fps, 50) if fps else None,
        "frame_sizes": dict(Counter(sizes)),
        "audio_concealed_pct": 100 * (a1["concealedSamples"] - a0["concealedSamples"]) / samples if samples else None,
        "video_loss_pct": 100 * lost / max(1, lost + received),
        "rtt_ms_median": common.percentile(rtts, 50) if rtts else None,
        "glass_to_glass_ms": {**_stats(glass["latencies"]), "reason": glass["reason"], "unread": glass["unreadable"]},
        "vitals_ms": _stats(await vitals()),
    }


# --- Cabine ------------------------------------------------------------------------------------------------------


async def run_cabine(call: NetworkCall, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    await call.start_gateway()
    out: dict[str, Any] = {}
    async with doctor_joined(call, workdir / "doctor-profile") as page:
        await serve_bench(page.context)
        await admit(page)
        await page.evaluate(ARRIVALS_JS)
        await wait_for(lambda: call.radio.subscribed("thermometer"), timeout=20, what="the thermometer")
        triggers: dict[int, float] = {}  # the n-th reading of the call -> when the citizen measured (wall clock)

        async def use_thermometer() -> None:
            while True:
                call.radio.trigger("thermometer")
                triggers[len(triggers) + 1] = time.time()
                await asyncio.sleep(TRIGGER_EVERY)

        thermometer = asyncio.create_task(use_thermometer())
        try:
            for name in PROFILES:
                await shape(call, name)
                await asyncio.sleep(args.settle_seconds)
                since = time.time()

                async def vitals(since: float = since) -> list[float]:
                    arrivals = await page.evaluate("window.__arrivals")
                    return [at - triggers[seq] * 1000 for seq, at in arrivals if triggers.get(seq, 0) >= since]

                out[name] = await measure(page, "cabine", args.profile_seconds, vitals)
                print(f"cabine, {name}: {json.dumps(out[name], default=str)}", flush=True)
        finally:
            thermometer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await thermometer
            await call.lab.shape(Side.CABIN)
        readings = await page.evaluate(READINGS_JS)
        seqs = [r["seq"] for r in readings]
        out["readings"] = {"triggered": len(triggers), "shown": len(readings), "unique": len(set(seqs))}
    await call.kill_gateway()
    return out


# --- browser to browser ------------------------------------------------------------------------------------------


async def run_browsers(call: NetworkCall, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    cabin_user, cabin_password = call.turn.credentials("bench-cabin")
    doctor_user, doctor_password = call.turn.credentials("bench-doctor")
    # The same routes as Cabine's call: the cabin through its delay forwarder over UDP, the doctor over TCP 443.
    cabin_ice = {
        "iceServers": [
            {
                "urls": [f"turn:{SIDES[Side.CABIN].delay_ip}:{TURN_PORT}?transport=udp"],
                "username": cabin_user,
                "credential": cabin_password,
            }
        ],
        "iceTransportPolicy": "relay",
    }
    doctor_ice = {
        "iceServers": [
            {
                "urls": [f"turn:{TURN_IP}:{TURN_TLS_PORT}?transport=tcp"],
                "username": doctor_user,
                "credential": doctor_password,
            }
        ],
        "iceTransportPolicy": "relay",
    }
    out: dict[str, Any] = {}
    async with (
        browser_in(call, Role.CABIN, workdir / "sender-profile") as cabin,
        browser_in(call, Role.DOCTOR, workdir / "receiver-profile") as doctor,
    ):
        sender = await cabin.new_page()
        receiver = await doctor.new_page()
        await sender.goto(f"{BENCH_ORIGIN}/static/bench/sender.html?width={SIZE[0]}&height={SIZE[1]}&fps=30")
        await receiver.goto(f"{BENCH_ORIGIN}/static/bench/receiver.html")
        offer = await sender.evaluate("([config]) => window.bench.offer('vp8', config)", [cabin_ice])
        answer = await receiver.evaluate("([sdp, config]) => window.bench.answer(sdp, config)", [offer, doctor_ice])
        await sender.evaluate("(sdp) => window.bench.accept(sdp)", answer)
        await receiver.wait_for_function(
            "() => document.getElementById('remote').videoWidth > 0 && window.bench.vitals.length > 0",
            timeout=30_000,
        )
        for name in PROFILES:
            await shape(call, name)
            await asyncio.sleep(args.settle_seconds)
            count = len(await receiver.evaluate("window.bench.vitals"))

            async def vitals(count: int = count) -> list[float]:
                return [float(ms) for _, ms in (await receiver.evaluate("window.bench.vitals"))[count:]]

            out[name] = await measure(receiver, "bench", args.profile_seconds, vitals)
            print(f"browser, {name}: {json.dumps(out[name], default=str)}", flush=True)
        await call.lab.shape(Side.CABIN)
    return out


async def run(workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    # aiortc uses the first TURN URL: the cabin's, through its delay forwarder. The doctor's browser, whose firewall
    # drops UDP, takes the second, TCP 443 straight to TURN.
    urls = (
        f"turn:{SIDES[Side.CABIN].delay_ip}:{TURN_PORT}?transport=udp",
        f"turn:{TURN_IP}:{TURN_TLS_PORT}?transport=tcp",
    )
    async with network_call(workdir, turn_urls=urls, camera_size=SIZE, stamp=True) as call:
        cabine = await run_cabine(call, workdir, args)
        browser = await run_browsers(call, workdir, args)
    return {"cabine": cabine, "browser": browser}


def report(args: argparse.Namespace, body: dict[str, Any]) -> None:
    rows = []
    for name in PROFILES:
        for system in ("cabine", "browser"):
            r = body[system][name]
            rows.append(
                [
                    name,
                    system,
                    common.fmt(r["freezes_per_min"], 2),
                    common.fmt(r["freeze_s_per_min"], 2),
                    common.fmt(r["fps_median"]),
                    " ".join(f"{k}:{v}" for k, v in r["frame_sizes"].items()),
                    common.fmt(r["audio_concealed_pct"], 2),
                    common.fmt(r["glass_to_glass_ms"]["mean"], 0),
                    common.fmt(r["vitals_ms"]["p99"], 0),
                    common.fmt(r["rtt_ms_median"], 0),
                ]
            )
    common.print_table(
        f"link profiles on the cabin's access link ({args.profile_seconds:.0f} s each; receiver: the doctor's side)",
        ["profile", "system", "freezes/min", "freeze s/min", "fps p50", "sizes", "concealed %", "g2g mean ms",
         "vitals p99 ms", "RTT ms"],
        rows,
    )  # fmt: skip
    readings = body["cabine"]["readings"]
    print(f"Cabine readings: {readings['triggered']} taken, {readings['shown']} shown, {readings['unique']} unique")
    body["options"] = vars(args)
    body["machine"] = common.machine_info()
    common.write_results("network-profiles", body)
    (common.RESULTS / "network-profiles.json").write_text(json.dumps(body, indent=2, default=str))
