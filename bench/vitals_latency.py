"""Vitals latency: an emulated device notification in the gateway to the reading rendered in the doctor's page.

The Cabine demo runs in this process with a 640x480 call to the real doctor page in headless Chromium. An emulated
thermometer builds a real Temperature Measurement payload (the bytes a device notifies), notes the time, and hands
it to the project's decoder; the reading then takes the product's path: readings loop, vitals outbox, data channel,
VitalsReceiver, the page's renderer. The page notes when the value is in the DOM and the start of the next frame.

    python bench/vitals_latency.py               # 300 readings
    python bench/vitals_latency.py --readings 1000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import common
from aiortc import RTCDataChannel

from cabine.demo.direct import temperature_payload
from cabine.demo.run import run_demo
from gateway.devices.gatt import TEMPERATURE_MEASUREMENT, decode
from gateway.devices.readings import DeviceIdentity, Reading

HOOK_JS = """() => {
  window.benchVitals = [];
  const arrived = window.benchArrived = {};
  window.cabine.vitals.channel.addEventListener("message", (event) => {
    // event.timeStamp: when the message event was created, i.e. the message's arrival in the page.
    try { arrived[JSON.parse(event.data).seq] = performance.timeOrigin + event.timeStamp; } catch {}
  });
  window.cabine.vitals.addEventListener("reading", (event) => {
    // Runs after the page's own listener, which has rendered the reading into the DOM.
    const shown = document.querySelector("#vital-body-temperature .value")?.dataset.value;
    const entry = {seq: event.detail.seq, value: event.detail.reading.value, shown: Number(shown),
                   dom: performance.timeOrigin + performance.now(), frame: null};
    window.benchVitals.push(entry);
    requestAnimationFrame(() => { entry.frame = performance.timeOrigin + performance.now(); });
  });
  return true;
}"""


class EmulatedThermometer:
    """Notifies `count` temperature payloads, 20-60 ms apart, once `go` is set; `notified_ms` holds their times."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.go = asyncio.Event()
        self.notified_ms: list[float] = []
        self.device = DeviceIdentity(address="emulated-thermometer", name="bench thermometer")

    async def readings(self) -> AsyncIterator[Reading]:
        await self.go.wait()
        for i in range(self.count):
            value = round(36.0 + (i % 20) / 10, 1)
            now = datetime.now(UTC)
            notified = time.time() * 1000
            payload = temperature_payload(value, now.replace(microsecond=0))
            reading = decode(TEMPERATURE_MEASUREMENT, payload, device=self.device, received_at=now)
            self.notified_ms.append(notified)
            yield reading
            await asyncio.sleep(random.uniform(0.02, 0.06))
        await asyncio.Event().wait()


class SendLog:
    """Wraps aiortc's RTCDataChannel.send in this process: when each reading (by seq) and each other message left."""

    def __init__(self) -> None:
        self.readings: dict[int, float] = {}
        self.others: list[tuple[float, str, int]] = []
        self._original = RTCDataChannel.send

    def __enter__(self) -> SendLog:
        original = self._original

        def send(channel: RTCDataChannel, data: str | bytes) -> None:
            now = time.time() * 1000
            message = json.loads(data) if isinstance(data, str) else {}
            if message.get("type") == "reading":
                self.readings[message["seq"]] = now
            else:
                self.others.append((now, str(message.get("type", "binary")), len(data)))
            original(channel, data)

        RTCDataChannel.send = send  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        RTCDataChannel.send = self._original  # type: ignore[method-assign]


async def loop_lag(samples: list[float], stop: asyncio.Event) -> None:
    """How late a 5 ms timer fires on this process's event loop (the gateway's), in ms."""
    while not stop.is_set():
        started = time.perf_counter()
        await asyncio.sleep(0.005)
        samples.append((time.perf_counter() - started - 0.005) * 1000)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    source = EmulatedThermometer(args.readings)
    lags: list[float] = []
    stop_lag = asyncio.Event()
    sends = SendLog()
    with tempfile.TemporaryDirectory(prefix="cabine-bench-") as tmp, sends:
        options = common.demo_options(data_dir=Path(tmp) / "data")
        async with run_demo(options, readings=source) as demo, common.chromium(Path(tmp) / "profile") as browser:
            page = await browser.new_page()
            await common.open_doctor_link(page, demo.doctor_link)
            await page.wait_for_function(
                "() => window.cabine.vitals.channel && window.cabine.vitals.channel.readyState === 'open'",
                timeout=30_000,
            )
            await common.wait_frames(page, 30)
            await page.evaluate(HOOK_JS)
            lag_task = asyncio.create_task(loop_lag(lags, stop_lag))
            source.go.set()
            deadline = time.monotonic() + 30 + args.readings * 0.1
            entries: list[dict[str, Any]] = []
            while time.monotonic() < deadline:
                await asyncio.sleep(0.5)
                entries = await page.evaluate(
                    "window.benchVitals.map((e) => ({...e, arrived: window.benchArrived[e.seq] ?? null}))"
                )
                if len(entries) >= args.readings and all(e["frame"] for e in entries):
                    break
            stop_lag.set()
            await lag_task
            gateway_stats = demo.gateway.sessions[demo.appointment.id].stats
            acked = gateway_stats.readings_acked
    by_seq = {e["seq"]: e for e in entries}
    arrived, dom, frame, sent, wrong = [], [], [], [], 0
    for i, notified in enumerate(source.notified_ms):
        entry = by_seq.get(i + 1)
        if entry is None:
            continue
        if i + 1 in sends.readings:
            sent.append(sends.readings[i + 1] - notified)
        if entry.get("arrived"):
            arrived.append(entry["arrived"] - notified)
        dom.append(entry["dom"] - notified)
        if entry["frame"]:
            frame.append(entry["frame"] - notified)
        wrong += entry["shown"] != entry["value"]
    return {
        "notified": len(source.notified_ms),
        "received": len(entries),
        "acked": acked,
        "shown_wrong_value": wrong,
        "sent_ms": common.summarize(sent),
        "arrived_ms": common.summarize(arrived),
        "event_loop_lag_ms": common.summarize(lags),
        "other_messages_sent": [{"at_ms": t, "type": k, "bytes": n} for t, k, n in sends.others],
        "dom_ms": common.summarize(dom),
        "next_frame_ms": common.summarize(frame),
        "raw_dom_ms": dom,
        "raw_next_frame_ms": frame,
    }


def main() -> None:
    network = common.isolate_loopback()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readings", type=int, default=300, help="readings to send (default 300)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(f"network: {network}")
    results = asyncio.run(main_async(args))
    rows = [
        ["sent by the gateway", *[results["sent_ms"].get(k) for k in ("n", "mean", "p50", "p99", "max")]],
        ["arrived in the page", *[results["arrived_ms"].get(k) for k in ("n", "mean", "p50", "p99", "max")]],
        ["in the DOM", *[results["dom_ms"].get(k) for k in ("n", "mean", "p50", "p99", "max")]],
        ["next frame", *[results["next_frame_ms"].get(k) for k in ("n", "mean", "p50", "p99", "max")]],
    ]
    lag = results["event_loop_lag_ms"]
    others = results["other_messages_sent"]
    print(f"gateway event-loop lag (5 ms timer): p50 {lag['p50']:.1f}, p99 {lag['p99']:.1f}, max {lag['max']:.1f} ms")
    print(f"other vitals messages sent: {[(o['type'], o['bytes']) for o in others]}")
    common.print_table(
        f"Vitals latency (ms): device notification to the doctor's page "
        f"({results['received']}/{results['notified']} received, {results['acked']} acknowledged, "
        f"{results['shown_wrong_value']} shown wrong)",
        ["reading", "n", "mean", "p50", "p99", "max"],
        rows,
    )
    results["machine"] = common.machine_info()
    results["network"] = network
    common.write_results("vitals_latency", results)


if __name__ == "__main__":
    main()
