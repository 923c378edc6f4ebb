"""Gateway CPU and memory during a sendrecv call, next to a bare aiortc peer and a browser sending the same pattern.

  cabine   `python -m cabine demo ... --ice-address 127.0.0.1` as its own process; the doctor page in headless
           Chromium sends its (fake) camera and microphone back, so the gateway encodes and decodes. That process
           also hosts the demo's signaling server, idle during the call.
  aiortc   `python bench/bare_peer.py` as its own process, to the minimal page (also sendrecv).
  browser  a headless Chromium drawing the pattern on a canvas and sending it (captureStream) to the same page:
           the whole sender browser (all its processes) is counted.
CPU is user + system seconds per wall-clock second from /proc/PID/stat (1.0 = one core); memory is VmRSS from
/proc/PID/status. The Cabine 640x480 call also runs for --minutes to measure RSS growth.

    python bench/cpu_memory.py                 # 20 s windows, a 1-minute Cabine call for RSS growth
    python bench/cpu_memory.py --minutes 30    # the 30-minute memory run
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import common

SYSTEMS = ("cabine", "aiortc", "browser")
SIZES = ((640, 480), (1280, 720))


@contextlib.asynccontextmanager
async def child(args: list[str], ready: str, log: list[str] | None = None) -> AsyncIterator[tuple[int, str]]:
    """A child Python process; yields (pid, the line that contained `ready`); its output goes to `log`."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        cwd=common.ROOT,
        env=common.subprocess_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(60):
            while True:
                raw = await proc.stdout.readline()
                if not raw:
                    raise RuntimeError(f"{args[0]} exited early:\n" + "".join(lines))
                line = raw.decode(errors="replace")
                lines.append(line)
                if ready in line:
                    break

        async def drain() -> None:
            assert proc.stdout is not None
            while raw := await proc.stdout.readline():
                if log is not None and len(log) < 2000:
                    log.append(raw.decode(errors="replace").rstrip())

        drainer = asyncio.create_task(drain())
        try:
            yield proc.pid, line
        finally:
            drainer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drainer
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def sample(
    pids: Callable[[], list[int]], seconds: float, interval: float = 1.0, page: Any = None
) -> dict[str, Any]:
    """CPU seconds per second and RSS of a set of processes over `seconds` (and the page's decoded frames)."""
    points: list[tuple[float, float, int]] = []
    decoded: list[tuple[float, int]] = []
    end = time.monotonic() + seconds
    next_check = time.monotonic()
    while True:
        current = pids()
        points.append((time.monotonic(), common.tree_cpu_seconds(current), common.tree_rss_kib(current)))
        if page is not None and points[-1][0] >= next_check:
            decoded.append((points[-1][0] - points[0][0], await _decoded(page)))
            next_check += 30
        if points[-1][0] >= end:
            break
        await asyncio.sleep(min(interval, max(0.0, end - time.monotonic())))
    (t0, c0, r0), (t1, c1, r1) = points[0], points[-1]
    ts = [p[0] - t0 for p in points]
    rss = [p[2] / 1024 for p in points]
    mean_t, mean_r = sum(ts) / len(ts), sum(rss) / len(rss)
    var = sum((t - mean_t) ** 2 for t in ts)
    slope = sum((t - mean_t) * (r - mean_r) for t, r in zip(ts, rss, strict=True)) / var if var else 0.0
    return {
        "seconds": t1 - t0,
        "cpu_cores": (c1 - c0) / (t1 - t0),
        "rss_mib_start": r0 / 1024,
        "rss_mib_end": r1 / 1024,
        "rss_mib_max": max(rss),
        "rss_growth_mib": (r1 - r0) / 1024,
        # From one minute into the window (when it is longer than two), past the codecs' first allocations.
        "rss_growth_after_1min_mib": (r1 - next((p[2] for p in points if p[0] - t0 >= 60), r0)) / 1024
        if t1 - t0 > 120
        else (r1 - r0) / 1024,
        "rss_slope_mib_per_min": slope * 60,
        "rss_series_mib": [round(x, 2) for x in rss],
        "cpu_series_cores": [
            round((b[1] - a[1]) / (b[0] - a[0]), 3) for a, b in itertools.pairwise(points) if b[0] > a[0]
        ],
        "frames_decoded_series": decoded,
    }


def demo_flags() -> list[str]:
    """The `cabine demo` flags for an unattended call: the citizen checked in, no cabin screen, direct devices.

    Only the flags this checkout's demo has are passed (read from its --help).
    """
    helptext = subprocess.run(
        [sys.executable, "-m", "cabine", "demo", "--help"],
        cwd=common.ROOT,
        env=common.subprocess_env(),
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    wanted = (("--auto-checkin",), ("--kiosk-port", "0"), ("--devices", "direct"))
    return [part for flag in wanted if flag[0] in helptext for part in flag]


async def measure_cabine(
    receiver: Any, size: tuple[int, int], codec: str, seconds: float, tmp: Path, warmup: float
) -> dict[str, Any]:
    port = common.free_port()
    args = ["-m", "cabine", "demo", "--port", str(port), "--data-dir", str(tmp / "data")]
    args += ["--ice-address", "127.0.0.1", "--video-size", f"{size[0]}x{size[1]}", "--codec", codec, *demo_flags()]
    log: list[str] = []
    async with child(args, "Doctor link:", log) as (pid, line):
        link = line.split("Doctor link:", 1)[1].strip()
        page = await receiver.new_page()
        try:
            await common.open_doctor_link(page, link, admit=True)
            await common.wait_frames(page, 30)
            await asyncio.sleep(warmup)
            idle_rss = common.rss_kib(pid) / 1024
            result = await sample(lambda: [pid], seconds, interval=1.0 if seconds <= 120 else 5.0, page=page)
            result["frames_decoded_by_page"] = await _decoded(page)
            result["rss_mib_after_warmup"] = idle_rss
            result["page_state"] = await page.evaluate("document.body.dataset.state ?? null")
            result["gateway_log"] = log
            _check_call(result)
            return result
        finally:
            await page.close()


async def measure_aiortc(receiver: Any, size: tuple[int, int], codec: str, seconds: float, warmup: float) -> dict:
    port = common.free_port()
    async with child(["bench/bare_peer.py", "--port", str(port)], "Bare peer ready") as (pid, _):
        page = await receiver.new_page()
        try:
            query = f"peer=aiortc&codec={codec}&width={size[0]}&height={size[1]}&fps=30"
            await page.goto(f"http://127.0.0.1:{port}/static/bench/receiver.html?{query}")
            await common.wait_frames(page, 30)
            await asyncio.sleep(warmup)
            result = await sample(lambda: [pid], seconds, page=page)
            result["frames_decoded_by_page"] = await _decoded(page)
            _check_call(result)
            return result
        finally:
            await page.close()


async def measure_browser(
    receiver: Any, size: tuple[int, int], codec: str, seconds: float, tmp: Path, warmup: float
) -> dict[str, Any]:
    profile = tmp / f"sender-{size[0]}x{size[1]}-{time.monotonic_ns()}"
    async with common.static_server() as served, common.chromium(profile) as sender:
        browser_pid = common.find_process(str(profile))
        if browser_pid is None:
            raise RuntimeError("could not find the sender browser's process")
        send_page = await sender.new_page()
        page = await receiver.new_page()
        try:
            await send_page.goto(f"{served.base_url}/static/bench/sender.html?width={size[0]}&height={size[1]}&fps=30")
            await page.goto(f"{served.base_url}/static/bench/receiver.html")
            offer = await send_page.evaluate("(codec) => window.bench.offer(codec)", codec)
            answer = await page.evaluate("(sdp) => window.bench.answer(sdp)", offer)
            await send_page.evaluate("(sdp) => window.bench.accept(sdp)", answer)
            await common.wait_frames(page, 30)
            await asyncio.sleep(warmup)
            result = await sample(lambda: common.descendants(browser_pid), seconds, page=page)
            result["frames_decoded_by_page"] = await _decoded(page)
            _check_call(result)
            result["sender"] = await send_page.evaluate("window.bench.outbound()")
            return result
        finally:
            await page.close()
            await send_page.close()


def _check_call(result: dict[str, Any]) -> None:
    """Say so when the page stopped receiving video during the window (the figures then describe an idle process)."""
    series = result["frames_decoded_series"]
    for (t0, f0), (t1, f1) in itertools.pairwise(series):
        if f1 - f0 < 0.5 * 30 * (t1 - t0):
            result["call_stalled_at_s"] = t0
            print(f"  WARNING: the page decoded only {f1 - f0} frames between {t0:.0f} s and {t1:.0f} s", flush=True)
            return


async def _decoded(page: Any) -> int:
    stats = await page.evaluate(
        "(async () => (await import('/static/bench/stamp.js')).videoCounters(" + common.PEER_JS + "))()"
    )
    return int(stats["framesDecoded"]) if stats else 0


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.size] if args.size else list(SIZES)
    systems = args.system or list(SYSTEMS)
    with tempfile.TemporaryDirectory(prefix="cabine-bench-") as tmp_name:
        tmp = Path(tmp_name)
        async with common.chromium(tmp / "receiver") as receiver:
            for size in sizes:
                for system in systems:
                    key = f"{system}/{args.codec}/{size[0]}x{size[1]}"
                    seconds = float(args.seconds)
                    if system == "cabine" and size == (640, 480):
                        seconds = max(seconds, args.minutes * 60)
                    print(f"{key}: measuring for {seconds:.0f} s", flush=True)
                    if system == "cabine":
                        result = await measure_cabine(receiver, size, args.codec, seconds, tmp, args.warmup)
                    elif system == "aiortc":
                        result = await measure_aiortc(receiver, size, args.codec, seconds, args.warmup)
                    else:
                        result = await measure_browser(receiver, size, args.codec, seconds, tmp, args.warmup)
                    print(
                        f"  cpu {result['cpu_cores']:.3f} cores, rss {result['rss_mib_end']:.1f} MiB, "
                        f"growth {result['rss_growth_mib']:+.2f} MiB over {result['seconds']:.0f} s",
                        flush=True,
                    )
                    results[key] = result
    return results


def main() -> None:
    network = common.isolate_loopback()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20, help="measuring window per call (default 20)")
    parser.add_argument("--minutes", type=float, default=1, help="length of the Cabine 640x480 call (default 1)")
    parser.add_argument("--warmup", type=float, default=5, help="seconds of call before measuring (default 5)")
    parser.add_argument("--codec", default="vp8", choices=["vp8", "h264"])
    parser.add_argument("--size", action="append", choices=[f"{w}x{h}" for w, h in SIZES], help="only this size")
    parser.add_argument("--system", action="append", choices=SYSTEMS, help="only this sender (repeatable)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(f"network: {network}")
    results = asyncio.run(main_async(args))
    rows = []
    for key, r in results.items():
        system, codec, size = key.split("/")
        base = results.get(f"browser/{codec}/{size}")
        ratio = f"{r['cpu_cores'] / base['cpu_cores']:.2f}" if base else "-"
        rows.append(
            [
                codec,
                size,
                system,
                f"{r['cpu_cores']:.3f}",
                ratio,
                r["rss_mib_end"],
                f"{r['rss_growth_mib']:+.2f}",
                f"{r['rss_slope_mib_per_min']:+.3f}",
                f"{r['seconds']:.0f}",
            ]
        )
    common.print_table(
        "CPU (cores = CPU seconds per second) and memory (MiB) during a sendrecv call at 30 fps",
        ["codec", "size", "sender", "cpu cores", "x browser", "rss", "rss growth", "MiB/min", "seconds"],
        rows,
    )
    payload = {"results": results, "machine": common.machine_info(), "network": network, "options": vars(args)}
    common.write_results("cpu_memory", payload)


if __name__ == "__main__":
    main()
