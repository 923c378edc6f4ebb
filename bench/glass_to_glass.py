"""Glass-to-glass latency: a stamped frame's capture in the sender to its display in the doctor's headless Chromium.

Three senders, in the same run, to a headless Chromium receiver on this machine:
  cabine   the Cabine demo (signaling + gateway, in this process) and the real doctor page;
  aiortc   a bare aiortc peer sending the same stamped pattern to a minimal page (bench/bare_peer.py);
  browser  a browser-to-browser call: a second headless Chromium draws the stamp on a canvas, sends captureStream().
For each frame the receiving page reads the stamp back from a canvas in requestVideoFrameCallback and records
(timeOrigin + expectedDisplayTime) - capture time; getStats gives the jitter-buffer delay per frame beside it.

    python bench/glass_to_glass.py                          # 5 runs x 210 frames per codec, size and sender
    python bench/glass_to_glass.py --runs 10 --frames 1000  # longer

Each run starts the sender afresh, so its frames meet the receiver's 60 Hz refresh at a new phase: a run's mean
moves by up to 16.7 ms with that phase alone, which is why several short runs beat one long one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import common
from bare_peer import bare_peer

from cabine.demo.run import run_demo
from gateway.media.spec import VideoCodec, VideoFormat

SYSTEMS = ("cabine", "aiortc", "browser")
CODECS = ("vp8", "h264")
SIZES = ((640, 480), (1280, 720))

MEASURE_JS = """async ([frames, warmup, timeoutMs]) => {
  const stamp = await import("/static/bench/stamp.js");
  const video = document.getElementById("remote");
  const pc = (window.cabine ?? window.bench).pc;
  return await stamp.measureGlassToGlass(video, pc, {frames, warmup, timeoutMs});
}"""


async def measure_page(page: Any, frames: int, warmup: int) -> dict[str, Any]:
    timeout_ms = (frames + warmup) / 30 * 1000 * 3 + 20_000
    result: dict[str, Any] = await page.evaluate(MEASURE_JS, [frames, warmup, timeout_ms])
    return result


async def run_cabine(receiver: Any, codec: str, size: tuple[int, int], args: argparse.Namespace) -> dict[str, Any]:
    options = common.demo_options(
        data_dir=args.data_dir,
        video_format=VideoFormat(size[0], size[1], 30),
        stamp_video=True,
        video_codec=VideoCodec(codec),
    )
    async with run_demo(options) as demo:
        page = await receiver.new_page()
        try:
            await common.open_doctor_link(page, demo.doctor_link)
            await common.wait_frames(page)
            return await measure_page(page, args.frames, args.warmup)
        finally:
            await page.close()


async def run_aiortc(receiver: Any, codec: str, size: tuple[int, int], args: argparse.Namespace) -> dict[str, Any]:
    async with bare_peer() as served:
        page = await receiver.new_page()
        try:
            query = f"peer=aiortc&codec={codec}&width={size[0]}&height={size[1]}&fps=30"
            await page.goto(f"{served.base_url}/static/bench/receiver.html?{query}")
            await common.wait_frames(page)
            return await measure_page(page, args.frames, args.warmup)
        finally:
            await page.close()


async def run_browser(
    receiver: Any, sender: Any, codec: str, size: tuple[int, int], args: argparse.Namespace
) -> dict[str, Any]:
    async with common.static_server() as served:
        send_page = await sender.new_page()
        page = await receiver.new_page()
        try:
            await send_page.goto(f"{served.base_url}/static/bench/sender.html?width={size[0]}&height={size[1]}&fps=30")
            await page.goto(f"{served.base_url}/static/bench/receiver.html")
            offer = await send_page.evaluate("(codec) => window.bench.offer(codec)", codec)
            answer = await page.evaluate("(sdp) => window.bench.answer(sdp)", offer)
            await send_page.evaluate("(sdp) => window.bench.accept(sdp)", answer)
            await common.wait_frames(page)
            result = await measure_page(page, args.frames, args.warmup)
            result["sender"] = await send_page.evaluate("window.bench.outbound()")
            return result
        finally:
            await page.close()
            await send_page.close()


def _row_key(system: str, codec: str, size: tuple[int, int]) -> str:
    return f"{system}/{codec}/{size[0]}x{size[1]}"


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    latencies = [x for r in runs for x in r["latencies"]]
    jitter = [r["stats"]["jitterBufferMs"] for r in runs if r.get("stats") and r["stats"]["jitterBufferMs"] is not None]
    decode = [r["stats"]["decodeMs"] for r in runs if r.get("stats") and r["stats"]["decodeMs"] is not None]
    to_receive = [x for r in runs for x in r.get("toReceive", [])]
    receive_to_display = [x for r in runs for x in r.get("receiveToDisplay", [])]
    return {
        "latency_ms": common.summarize(latencies),
        "capture_to_receive_ms": common.summarize(to_receive),
        "receive_to_display_ms": common.summarize(receive_to_display),
        "run_means_ms": [sum(r["latencies"]) / len(r["latencies"]) for r in runs if r["latencies"]],
        "jitter_buffer_ms": sum(jitter) / len(jitter) if jitter else None,
        "decode_ms": sum(decode) / len(decode) if decode else None,
        "unreadable": sum(r["unreadable"] for r in runs),
        "repeated": sum(r["repeated"] for r in runs),
        "frames_dropped": sum((r.get("stats") or {}).get("framesDropped", 0) for r in runs),
        "kbps": [round(r["kbps"]) for r in runs if r.get("kbps")],
        "sizes": sorted({f"{r['width']}x{r['height']}" for r in runs}),
        "mime_types": sorted({str(r.get("mimeType")) for r in runs}),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    codecs = args.codec or list(CODECS)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.size] if args.size else list(SIZES)
    systems = args.system or list(SYSTEMS)
    raw: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="cabine-bench-") as tmp:
        args.data_dir = Path(tmp) / "data"
        async with contextlib.AsyncExitStack() as stack:
            receiver = await stack.enter_async_context(common.chromium(Path(tmp) / "receiver"))
            sender = None
            if "browser" in systems:
                sender = await stack.enter_async_context(common.chromium(Path(tmp) / "sender"))
            for run in range(args.runs):
                for codec in codecs:
                    for size in sizes:
                        for system in systems:
                            started = time.monotonic()
                            if system == "cabine":
                                result = await run_cabine(receiver, codec, size, args)
                            elif system == "aiortc":
                                result = await run_aiortc(receiver, codec, size, args)
                            else:
                                result = await run_browser(receiver, sender, codec, size, args)
                            key = _row_key(system, codec, size)
                            raw.setdefault(key, []).append(result)
                            lat = result["latencies"]
                            mean = sum(lat) / len(lat) if lat else float("nan")
                            jb = (result.get("stats") or {}).get("jitterBufferMs")
                            print(
                                f"run {run + 1}/{args.runs} {key:24} {len(lat):5d} frames  mean {mean:6.1f} ms  "
                                f"jitter buffer {common.fmt(jb)} ms  ({result['reason']}, "
                                f"{time.monotonic() - started:.0f} s)",
                                flush=True,
                            )
    summary = {key: aggregate(runs) for key, runs in raw.items()}
    return {"summary": summary, "raw": raw, "codecs": codecs, "sizes": [f"{w}x{h}" for w, h in sizes]}


def report(results: dict[str, Any]) -> None:
    summary = results["summary"]
    rows = []
    for codec in results["codecs"]:
        for size in results["sizes"]:
            base = summary.get(f"browser/{codec}/{size}")
            base_mean = base["latency_ms"].get("mean") if base else None
            for system in SYSTEMS:
                s = summary.get(f"{system}/{codec}/{size}")
                if s is None or not s["latency_ms"].get("n"):
                    continue
                lat = s["latency_ms"]
                ratio = lat["mean"] / base_mean if base_mean else None
                spread = s["run_means_ms"]
                rows.append(
                    [
                        codec,
                        size,
                        system,
                        lat["n"],
                        lat["mean"],
                        lat["p50"],
                        lat["p99"],
                        f"{min(spread):.1f}-{max(spread):.1f}",
                        s["jitter_buffer_ms"],
                        s["decode_ms"],
                        f"{ratio:.2f}" if ratio else "-",
                    ]
                )
    common.print_table(
        "Glass-to-glass latency (ms): capture in the sender to display in headless Chromium",
        ["codec", "size", "sender", "frames", "mean", "p50", "p99", "run means", "jitter buf", "decode", "x browser"],
        rows,
    )


def main() -> None:
    network = common.isolate_loopback()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="runs per codec, size and sender (default 5)")
    parser.add_argument("--frames", type=int, default=210, help="measured frames per run (default 210)")
    parser.add_argument("--warmup", type=int, default=30, help="frames shown before measuring (default 30)")
    parser.add_argument("--codec", action="append", choices=CODECS, help="only this codec (repeatable)")
    parser.add_argument("--size", action="append", choices=[f"{w}x{h}" for w, h in SIZES], help="only this size")
    parser.add_argument("--system", action="append", choices=SYSTEMS, help="only this sender (repeatable)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(f"network: {network}")
    started = time.monotonic()
    results = asyncio.run(main_async(args))
    report(results)
    results["machine"] = common.machine_info()
    results["network"] = network
    results["options"] = {"runs": args.runs, "frames": args.frames, "warmup": args.warmup}
    results["seconds"] = round(time.monotonic() - started)
    common.write_results("glass_to_glass", results)


if __name__ == "__main__":
    main()
