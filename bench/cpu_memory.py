"""CPU and memory of the cabin in a sendrecv call, next to a bare aiortc peer and a browser sending the same pattern.

  cabine   the call alone: `python -m cabine demo ... --ice-address 127.0.0.1 --kiosk-port 0 --devices direct
           --auto-checkin` as its own process; the doctor page in headless Chromium sends its (fake) camera and
           microphone back, so the gateway encodes and decodes. That process also hosts the demo's signaling server,
           idle during the call.
  cabin    the whole cabin, as deployed: the same demo with the cabin screen on (`--kiosk-port P`, its second,
           loopback peer connection) and the Bluetooth path (`--devices bluetooth --device-period 5`: four emulated
           health devices read through bleak and BlueZ-over-bluezoo, readings on the data channel); the cabin screen
           in its OWN headless Chromium (the kiosk browser of a cabin PC), where the citizen presses "Commencer"; the
           doctor page as for `cabine`. Counted apart: the demo process (gateway + idle signaling), the kiosk
           Chromium (all its processes), their sum, and the Bluetooth emulator (dbus-daemon + bluezoo, which a real
           cabin does not have: never added to the cabin's figure).
  aiortc   `python bench/bare_peer.py` as its own process, to the minimal page (also sendrecv).
  browser  a headless Chromium drawing the pattern on a canvas and sending it (captureStream) to the same page:
           the whole sender browser (all its processes) is counted.
CPU is user + system seconds per wall-clock second from /proc/PID/stat (1.0 = one core), summed per process so that a
process that starts or ends in the window counts for what it used; memory is VmRSS from /proc/PID/status (and the
PSS from /proc/PID/smaps_rollup at the end of the window). The 640x480 `cabine` and `cabin` calls also run for
--minutes to measure RSS growth. A window in which a video stalled, or no reading arrived, is flagged.

    python bench/cpu_memory.py                 # 20 s windows, a 1-minute call for RSS growth (cabine and cabin)
    python bench/cpu_memory.py --minutes 30 --size 640x480 --system cabine --system cabin    # the 30-minute run
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import common

SYSTEMS = ("cabine", "cabin", "aiortc", "browser")
SIZES = ((640, 480), (1280, 720))
FPS = 30
# A probe interval in which a video decoded fewer than this share of its nominal frames is a stall.
STALL_SHARE = 0.5
# Over the whole window, a video below this share of its nominal frame rate is reported as "fps low".
FPS_LOW_SHARE = 0.9
DEVICE_PERIOD = 5.0
# Readings per device period: the four emulated devices measure once each, the oximeter also sends a continuous
# sample (cabine/demo/radio.py, _measure_periodically).
READINGS_PER_PERIOD = 5


def self_view_fps() -> int:
    """The citizen's own image's frame rate on the cabin screen: 15 since it is sent small (gateway/session.py's
    SELF_VIEW_FPS); the camera's for an older checkout measured with --tree."""
    if TREE != common.ROOT:
        return FPS
    from gateway.session import SELF_VIEW_FPS

    return min(FPS, SELF_VIEW_FPS)


# The checkout whose Cabine is measured (--tree): this one, or another version's to compare in the same conditions.
TREE = common.ROOT

Pids = Callable[[], list[int]]
Counters = dict[str, int]
Probe = Callable[[], Awaitable[Counters]]


@contextlib.asynccontextmanager
async def child(
    args: list[str], ready: str, log: list[str] | None = None, *, root: Path | None = None
) -> AsyncIterator[tuple[int, list[str]]]:
    """A child Python process; yields (pid, its output lines up to the one containing `ready`).

    The rest of its output goes to `log`. `root`: the checkout it imports Cabine from (another version's, to
    compare).
    """
    root = root or TREE
    env = common.subprocess_env()
    env["PYTHONPATH"] = os.pathsep.join([str(root), env["PYTHONPATH"]])
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        cwd=root,
        env=env,
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
            yield proc.pid, lines
        finally:
            drainer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drainer
    finally:
        await common.stop_process(proc)


def after(lines: list[str], label: str) -> str:
    """The text after `label` on the first output line that has it.

    Raises:
        RuntimeError: no line has it.
    """
    for line in lines:
        if label in line:
            return line.split(label, 1)[1].strip()
    raise RuntimeError(f"no {label!r} line in:\n" + "".join(lines))


# --- sampling --------------------------------------------------------------------------------------------------


class _Group:
    """CPU and RSS of a changing set of processes, read tick by tick.

    CPU is accumulated per process: a process that appears in the window counts from zero, one that ends keeps what
    it used until last seen (a plain sum of the tree's totals would drop it and go backwards).
    """

    def __init__(self, pids: Pids) -> None:
        self._pids = pids
        self._last: dict[int, float] = {}
        self._used = 0.0
        self.points: list[tuple[float, float, int]] = []
        self.current: list[int] = []

    def tick(self) -> None:
        first = not self.points
        current = self._pids()
        rss = 0
        for pid in current:
            try:
                cpu = common.cpu_seconds(pid)
                rss += common.rss_kib(pid)
            except (OSError, IndexError, ValueError):
                continue
            self._used += cpu - self._last.get(pid, cpu if first else 0.0)
            self._last[pid] = cpu
        self.current = current
        self.points.append((time.monotonic(), self._used, rss))


def _five_minute_means(ts: list[float], rss: list[float]) -> float | None:
    """Mean RSS (MiB) over the window's last five minutes less over its first five; None below ten minutes."""
    if not ts or ts[-1] < 600:
        return None
    first = [r for t, r in zip(ts, rss, strict=True) if t <= 300]
    last = [r for t, r in zip(ts, rss, strict=True) if t >= ts[-1] - 300]
    return sum(last) / len(last) - sum(first) / len(first)


def _stats(points: list[tuple[float, float, int]]) -> dict[str, Any]:
    """CPU cores and RSS figures from (time, cumulative CPU seconds, RSS KiB) points."""
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
        # For windows of ten minutes or more: the mean of the last five minutes less that of the first five, which a
        # sample taken just before or after a malloc_trim (gateway/allocator.py, every minute) does not swing.
        "rss_growth_5min_means_mib": _five_minute_means(ts, rss),
        "rss_series_mib": [round(x, 2) for x in rss],
        "cpu_series_cores": [
            round((b[1] - a[1]) / (b[0] - a[0]), 3) for a, b in itertools.pairwise(points) if b[0] > a[0]
        ],
    }


async def sample(
    groups: Mapping[str, Pids],
    seconds: float,
    *,
    interval: float = 1.0,
    probe: Probe | None = None,
    probe_every: float = 30.0,
) -> tuple[dict[str, dict[str, Any]], list[tuple[float, Counters]]]:
    """CPU seconds per second and RSS of each group of processes over `seconds`, read at the same instants.

    `probe` (the pages' counters: frames decoded, readings...) is read at the start, every `probe_every` seconds
    and at the end; returns each group's figures and the probe's series [(seconds into the window, counters)].
    """
    state = {name: _Group(pids) for name, pids in groups.items()}
    # Everything this benchmark started (the processes measured, the doctor's browser, Playwright, itself), to tell
    # the machine's other work (other people's tests on a shared machine) from ours.
    ours = _Group(lambda: common.descendants(os.getpid()))
    busy: list[float] = []
    probes: list[tuple[float, Counters]] = []
    start = time.monotonic()
    end = start + seconds
    next_probe = start
    while True:
        now = time.monotonic()
        for group in state.values():
            group.tick()
        ours.tick()
        busy.append(common.machine_busy_seconds())
        if probe is not None and (now >= next_probe or now >= end):
            probes.append((round(now - start, 2), await probe()))
            next_probe += probe_every
        if now >= end:
            break
        await asyncio.sleep(min(interval, max(0.0, end - time.monotonic())))
    figures = {}
    for name, group in state.items():
        figures[name] = _stats(group.points)
        figures[name]["pss_mib_end"] = common.tree_pss_kib(group.current) / 1024
        figures[name]["processes"] = len(group.current)
    elapsed = ours.points[-1][0] - ours.points[0][0]
    machine_cores = (busy[-1] - busy[0]) / elapsed
    ours_cores = (ours.points[-1][1] - ours.points[0][1]) / elapsed
    figures["load"] = {
        "machine_busy_cores": round(machine_cores, 3),
        "benchmark_cores": round(ours_cores, 3),
        "other_cores": round(machine_cores - ours_cores, 3),
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
    }
    return figures, probes


def probe_every(seconds: float) -> float:
    """How often the pages are read: often enough that a short window has several intervals to check."""
    return min(30.0, max(5.0, seconds / 4))


def check_window(
    result: dict[str, Any], probes: list[tuple[float, Counters]], nominal: Mapping[str, float | str]
) -> None:
    """Frame rates over the window, and flags when a video stalled or fell short.

    `nominal` gives each video counter's expected frames per second, or the name of the counter it relays (the
    cabin screen's copy of the professional's video should keep up with what the doctor's page sent). A probe
    interval with fewer than STALL_SHARE of the expected frames is a stall (the figures then describe a process
    doing less than a call); a whole window under FPS_LOW_SHARE is "fps low".
    """

    def expected(name: str, a: Counters, b: Counters, dt: float) -> float:
        source = nominal[name]
        if isinstance(source, str):
            return float(b.get(source, 0) - a.get(source, 0))
        return source * dt

    (t0, first), (t1, last) = probes[0], probes[-1]
    if t1 <= t0:
        return
    result["fps"] = {name: round((last.get(name, 0) - first.get(name, 0)) / (t1 - t0), 1) for name in nominal}
    sources = {s for s in nominal.values() if isinstance(s, str)}
    result["fps"].update({s: round((last.get(s, 0) - first.get(s, 0)) / (t1 - t0), 1) for s in sources})
    low = [
        name
        for name in nominal
        if last.get(name, 0) - first.get(name, 0) < FPS_LOW_SHARE * expected(name, first, last, t1 - t0)
    ]
    if low:
        # Not a stall, but fewer frames than the sources give: a process short of CPU drops frames (its figure is
        # then for less work than the call asks).
        result["fps_low"] = low
        print(f"  WARNING: frame rate below {FPS_LOW_SHARE:.0%} of the source's for {', '.join(low)}", flush=True)
    for (a_t, a), (b_t, b) in itertools.pairwise(probes):
        for name in nominal:
            got = b.get(name, 0) - a.get(name, 0)
            if got < STALL_SHARE * expected(name, a, b, b_t - a_t):
                result["call_stalled_at_s"] = a_t
                result["stalled_video"] = name
                print(f"  WARNING: {name}: only {got} frames decoded between {a_t:.0f} s and {b_t:.0f} s", flush=True)
                return


# --- the pages -------------------------------------------------------------------------------------------------


# Inline, not imported from /static/bench/: signaling serves only its own pages' folders.
DECODED_JS = f"""async () => {{
  const pc = {common.PEER_JS};
  let n = 0;
  if (pc) (await pc.getStats()).forEach((s) => {{
    if (s.type === "inbound-rtp" && s.kind === "video") n += s.framesDecoded || 0;
  }});
  return n;
}}"""


async def _decoded(page: Any) -> int:
    """Video frames the page has decoded (the doctor's page: the cabin's camera)."""
    return int(await page.evaluate(DECODED_JS))


async def _sent(page: Any) -> int:
    """Video frames the doctor page has sent (its camera, which the gateway relays to the cabin screen)."""
    return int(
        await page.evaluate(
            "(async () => { let n = 0; const pc = " + common.PEER_JS + "; if (!pc) return 0;"
            " (await pc.getStats()).forEach((s) => { if (s.type === 'outbound-rtp' && s.kind === 'video')"
            " n += s.framesSent || 0; }); return n; })()"
        )
    )


async def _readings(page: Any) -> int:
    """Readings the doctor page has received on the vitals channel (each counted once)."""
    return int(await page.evaluate("window.cabine?.vitals?.readings?.length ?? 0"))


# The cabin screen's loopback connection: frames decoded per video (by the mids the gateway announced), audio
# received, and the frames its <video> elements have shown.
KIOSK_JS = """async () => {
  const c = window.cabine;
  const out = { professional: 0, self: 0, audio_samples: 0, shown_professional: 0, shown_self: 0, playing: 0 };
  if (!c || !c.pc || !c.mids) return out;
  const byMid = {};
  (await c.pc.getStats()).forEach((s) => { if (s.type === "inbound-rtp") byMid[s.mid] = s; });
  out.professional = (byMid[c.mids.professional_video] || {}).framesDecoded || 0;
  out.self = (byMid[c.mids.self_video] || {}).framesDecoded || 0;
  out.audio_samples = (byMid[c.mids.professional_audio] || {}).totalSamplesReceived || 0;
  for (const id of ["professional", "self"]) {
    const v = document.getElementById(id);
    if (!v) continue;
    out[`shown_${id}`] = v.getVideoPlaybackQuality().totalVideoFrames;
    if (!v.paused && v.readyState >= 2 && v.videoWidth > 0) out.playing += 1;
  }
  return out;
}"""


async def _kiosk(page: Any) -> Counters:
    return {f"kiosk_{k}": int(v) for k, v in (await page.evaluate(KIOSK_JS)).items()}


async def _wait_js(page: Any, predicate: str, timeout: float, what: str) -> None:
    """Poll a JavaScript arrow function in the page until it returns true.

    Raises:
        TimeoutError: it did not within `timeout` seconds.
    """
    ok = await page.evaluate(
        """async ([source, ms]) => {
            const predicate = eval(source);
            const deadline = performance.now() + ms;
            while (performance.now() < deadline) {
              try { if (await predicate()) return true; } catch (e) {}
              await new Promise((r) => setTimeout(r, 100));
            }
            return false;
        }""",
        [predicate, timeout * 1000],
    )
    if not ok:
        raise TimeoutError(f"no {what} within {timeout:.0f} s")


# --- the systems -----------------------------------------------------------------------------------------------


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


def demo_args(tmp: Path, name: str, size: tuple[int, int], codec: str) -> list[str]:
    """`cabine demo` on a free port with its own data directory, loopback ICE, this size and codec."""
    port = common.free_port()
    args = ["-m", "cabine", "demo", "--port", str(port), "--data-dir", str(tmp / f"data-{name}")]
    return [*args, "--ice-address", "127.0.0.1", "--video-size", f"{size[0]}x{size[1]}", "--codec", codec]


def interval_for(seconds: float) -> float:
    return 1.0 if seconds <= 120 else 5.0


async def measure_cabine(
    receiver: Any, size: tuple[int, int], codec: str, seconds: float, tmp: Path, warmup: float
) -> dict[str, Any]:
    args = [*demo_args(tmp, f"cabine-{size[0]}x{size[1]}", size, codec), *demo_flags()]
    log: list[str] = []
    async with child(args, "Doctor link:", log) as (pid, lines):
        page = await receiver.new_page()
        try:
            await common.open_doctor_link(page, after(lines, "Doctor link:"), admit=True)
            await common.wait_frames(page, 30)
            await asyncio.sleep(warmup)
            idle_rss = common.rss_kib(pid) / 1024

            async def probe() -> Counters:
                return {"doctor_video": await _decoded(page)}

            figures, probes = await sample(
                {"gateway": lambda: [pid]},
                seconds,
                interval=interval_for(seconds),
                probe=probe,
                probe_every=probe_every(seconds),
            )
            result = figures["gateway"]
            result["load"] = figures["load"]
            result["frames_decoded_series"] = [(t, c["doctor_video"]) for t, c in probes]
            result["frames_decoded_by_page"] = probes[-1][1]["doctor_video"]
            result["rss_mib_after_warmup"] = idle_rss
            result["page_state"] = await page.evaluate("document.body.dataset.state ?? null")
            result["gateway_log"] = log
            check_window(result, probes, {"doctor_video": FPS})
            return result
        finally:
            await page.close()


async def measure_cabin(
    receiver: Any,
    size: tuple[int, int],
    codec: str,
    seconds: float,
    tmp: Path,
    warmup: float,
    device_period: float,
) -> dict[str, Any]:
    """The whole cabin: the demo with its screen and the Bluetooth path, the screen in its own Chromium.

    Raises:
        RuntimeError: the demo could not start the Bluetooth emulation (the figure would not be the whole cabin).
    """
    name = f"cabin-{size[0]}x{size[1]}"
    args = [*demo_args(tmp, name, size, codec), "--kiosk-port", str(common.free_port())]
    args += ["--devices", "bluetooth", "--device-period", str(device_period)]
    log: list[str] = []
    profile = tmp / f"kiosk-{name}-{time.monotonic_ns()}"
    async with (
        child(args, "Doctor link:", log) as (pid, lines),
        common.chromium(profile) as kiosk_browser,
    ):
        if any("Bluetooth emulation unavailable" in line for line in lines):
            raise RuntimeError(
                "the whole cabin needs the Bluetooth emulation (dbus-daemon, bluezoo):\n" + "".join(lines)
            )
        kiosk_pid = common.find_process(str(profile))
        if kiosk_pid is None:
            raise RuntimeError("could not find the kiosk browser's process")
        # The emulator's processes are the demo's children (dbus-daemon, the bluezoo program); a real cabin has
        # BlueZ and a radio instead.
        emulator = [p for p in common.descendants(pid) if p != pid]
        kiosk = await kiosk_browser.new_page()
        page = await receiver.new_page()
        try:
            # The citizen: the cabin screen, "Commencer"; then the doctor joins and admits.
            await kiosk.goto(after(lines, "Cabin screen:"))
            await kiosk.wait_for_selector("body[data-state=idle]", timeout=20_000)
            await kiosk.get_by_role("button", name="Commencer").click()
            await kiosk.wait_for_selector("body[data-state=waiting]", timeout=20_000)
            await common.open_doctor_link(page, after(lines, "Doctor link:"), admit=True)
            await common.wait_frames(page, 30)
            await kiosk.wait_for_selector("body[data-state=in-call]", timeout=20_000)
            await _wait_js(
                kiosk,
                f"async () => {{ const m = await ({KIOSK_JS})(); return m.professional > 10 && m.self > 10; }}",
                30,
                "video decoded by the cabin screen",
            )
            with contextlib.suppress(TimeoutError):
                # The devices are found, connected and subscribed through bleak first; flagged below if none came.
                await _wait_js(page, "() => (window.cabine?.vitals?.readings?.length ?? 0) > 0", 60, "reading")
            await asyncio.sleep(warmup)
            idle_rss = common.rss_kib(pid) / 1024

            async def probe() -> Counters:
                return {
                    "doctor_video": await _decoded(page),
                    "doctor_sent": await _sent(page),
                    "readings": await _readings(page),
                    **await _kiosk(kiosk),
                }

            figures, probes = await sample(
                {
                    "gateway": lambda: [pid],
                    "kiosk": lambda: common.descendants(kiosk_pid),
                    "gateway_and_kiosk": lambda: [pid, *common.descendants(kiosk_pid)],
                    "emulator": lambda: [p for p in emulator if Path(f"/proc/{p}").exists()],
                },
                seconds,
                interval=interval_for(seconds),
                probe=probe,
                probe_every=probe_every(seconds),
            )
            # The gateway's figures at the top, as for the other systems; the others beside them.
            result: dict[str, Any] = dict(figures["gateway"])
            for group in ("kiosk", "gateway_and_kiosk", "emulator", "load"):
                result[group] = figures[group]
            result["emulator_processes"] = [common.process_name(p) for p in emulator]
            result["probe_series"] = probes
            result["frames_decoded_series"] = [(t, c["doctor_video"]) for t, c in probes]
            result["frames_decoded_by_page"] = probes[-1][1]["doctor_video"]
            result["readings_in_window"] = probes[-1][1]["readings"] - probes[0][1]["readings"]
            result["readings_expected"] = int(READINGS_PER_PERIOD * seconds / device_period)
            result["kiosk_videos_playing"] = probes[-1][1]["kiosk_playing"]
            result["kiosk_audio_samples_in_window"] = (
                probes[-1][1]["kiosk_audio_samples"] - probes[0][1]["kiosk_audio_samples"]
            )
            result["rss_mib_after_warmup"] = idle_rss
            result["page_state"] = await page.evaluate("document.body.dataset.state ?? null")
            result["kiosk_state"] = await kiosk.evaluate("document.body.dataset.state ?? null")
            result["device_period_s"] = device_period
            result["gateway_log"] = log
            check_window(
                result,
                probes,
                {"doctor_video": FPS, "kiosk_professional": "doctor_sent", "kiosk_self": self_view_fps()},
            )
            if result["readings_in_window"] <= 0:
                result["no_readings"] = True
                print("  WARNING: no reading reached the doctor's page during the window", flush=True)
            if result["kiosk_videos_playing"] < 2:
                print("  WARNING: the cabin screen's two videos are not both playing", flush=True)
            return result
        finally:
            await page.close()
            await kiosk.close()


async def measure_aiortc(receiver: Any, size: tuple[int, int], codec: str, seconds: float, warmup: float) -> dict:
    port = common.free_port()
    async with child(["bench/bare_peer.py", "--port", str(port)], "Bare peer ready") as (pid, _):
        page = await receiver.new_page()
        try:
            query = f"peer=aiortc&codec={codec}&width={size[0]}&height={size[1]}&fps={FPS}"
            await page.goto(f"http://127.0.0.1:{port}/static/bench/receiver.html?{query}")
            await common.wait_frames(page, 30)
            await asyncio.sleep(warmup)
            return await _measure_one(page, lambda: [pid], seconds)
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
            await send_page.goto(
                f"{served.base_url}/static/bench/sender.html?width={size[0]}&height={size[1]}&fps={FPS}"
            )
            await page.goto(f"{served.base_url}/static/bench/receiver.html")
            offer = await send_page.evaluate("(codec) => window.bench.offer(codec)", codec)
            answer = await page.evaluate("(sdp) => window.bench.answer(sdp)", offer)
            await send_page.evaluate("(sdp) => window.bench.accept(sdp)", answer)
            await common.wait_frames(page, 30)
            await asyncio.sleep(warmup)
            result = await _measure_one(page, lambda: common.descendants(browser_pid), seconds)
            result["sender"] = await send_page.evaluate("window.bench.outbound()")
            return result
        finally:
            await page.close()
            await send_page.close()


async def _measure_one(page: Any, pids: Pids, seconds: float) -> dict[str, Any]:
    """One sender's processes while `page` receives its video."""

    async def probe() -> Counters:
        return {"doctor_video": await _decoded(page)}

    figures, probes = await sample({"sender": pids}, seconds, probe=probe, probe_every=probe_every(seconds))
    result = figures["sender"]
    result["load"] = figures["load"]
    result["frames_decoded_series"] = [(t, c["doctor_video"]) for t, c in probes]
    result["frames_decoded_by_page"] = probes[-1][1]["doctor_video"]
    check_window(result, probes, {"doctor_video": FPS})
    return result


# --- the run ---------------------------------------------------------------------------------------------------


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
                    if system in ("cabine", "cabin") and size == (640, 480):
                        seconds = max(seconds, args.minutes * 60)
                    print(f"{key}: measuring for {seconds:.0f} s", flush=True)
                    if system == "cabine":
                        result = await measure_cabine(receiver, size, args.codec, seconds, tmp, args.warmup)
                    elif system == "cabin":
                        result = await measure_cabin(
                            receiver, size, args.codec, seconds, tmp, args.warmup, args.device_period
                        )
                    elif system == "aiortc":
                        result = await measure_aiortc(receiver, size, args.codec, seconds, args.warmup)
                    else:
                        result = await measure_browser(receiver, size, args.codec, seconds, tmp, args.warmup)
                    print(
                        f"  cpu {result['cpu_cores']:.3f} cores, rss {result['rss_mib_end']:.1f} MiB, "
                        f"growth {result['rss_growth_mib']:+.2f} MiB over {result['seconds']:.0f} s"
                        + (
                            f" ({result['rss_growth_5min_means_mib']:+.2f} MiB between the first and last five minutes)"
                            if result.get("rss_growth_5min_means_mib") is not None
                            else ""
                        )
                        + "; "
                        f"machine {result['load']['machine_busy_cores']:.2f} cores busy, "
                        f"{result['load']['other_cores']:.2f} of them not this benchmark's",
                        flush=True,
                    )
                    if system == "cabin":
                        k, s = result["kiosk"], result["gateway_and_kiosk"]
                        print(
                            f"  kiosk browser cpu {k['cpu_cores']:.3f}, rss {k['rss_mib_end']:.1f} MiB; "
                            f"gateway + kiosk cpu {s['cpu_cores']:.3f}, rss {s['rss_mib_end']:.1f} MiB; "
                            f"fps {result['fps']}, {result['readings_in_window']} readings",
                            flush=True,
                        )
                    results[key] = result
    return results


def ratio(value: float, base: dict[str, Any] | None) -> str:
    return f"{value / base['cpu_cores']:.2f}" if base and base["cpu_cores"] > 0 else "-"


SHORT = {"doctor_video": "doctor", "kiosk_professional": "kiosk pro", "kiosk_self": "kiosk self"}


def window_verdict(result: dict[str, Any]) -> str:
    """How the call went during the window: ok, fps low (which videos), stalled, no readings."""
    notes = []
    if "call_stalled_at_s" in result:
        notes.append(f"stalled ({SHORT[result['stalled_video']]})")
    if result.get("fps_low"):
        notes.append(f"fps low ({', '.join(SHORT[name] for name in result['fps_low'])})")
    if result.get("no_readings"):
        notes.append("no readings")
    return "; ".join(notes) or "ok"


def print_tables(results: dict[str, Any]) -> None:
    rows = []
    for key, r in results.items():
        system, codec, size = key.split("/")
        browser, bare_call = results.get(f"browser/{codec}/{size}"), results.get(f"cabine/{codec}/{size}")
        kiosk, both = r.get("kiosk"), r.get("gateway_and_kiosk")
        rows.append(
            [
                codec,
                size,
                system,
                f"{r['cpu_cores']:.3f}",
                f"{kiosk['cpu_cores']:.3f}" if kiosk else "-",
                f"{both['cpu_cores']:.3f}" if both else "-",
                ratio(r["cpu_cores"], bare_call) if system == "cabin" else "-",
                ratio(both["cpu_cores"], bare_call) if both else "-",
                ratio(r["cpu_cores"], browser),
                r["rss_mib_end"],
                kiosk["rss_mib_end"] if kiosk else "-",
                both["rss_mib_end"] if both else "-",
                f"{r['rss_growth_mib']:+.2f}",
                f"{r['rss_slope_mib_per_min']:+.3f}",
                f"{r['seconds']:.0f}",
                f"{r['load']['other_cores']:.2f}",
                window_verdict(r),
            ]
        )
    common.print_table(
        f"CPU (cores = CPU seconds per second) and memory (MiB) during a sendrecv call at {FPS} fps "
        "(process: the gateway, the bare peer or the sending browser; others: cores busy with other people's work)",
        [
            "codec",
            "size",
            "system",
            "cpu process",
            "cpu kiosk",
            "cpu sum",
            "x cabine",
            "sum x cabine",
            "x browser",
            "rss",
            "rss kiosk",
            "rss sum",
            "rss growth",
            "MiB/min",
            "seconds",
            "others",
            "window",
        ],
        rows,
    )
    cabin_rows = []
    for key, r in results.items():
        if not key.startswith("cabin/"):
            continue
        fps, emulator, kiosk = r["fps"], r["emulator"], r["kiosk"]
        cabin_rows.append(
            [
                key.split("/")[2],
                fps.get("doctor_video"),
                fps.get("kiosk_professional"),
                fps.get("kiosk_self"),
                r["kiosk_videos_playing"],
                f"{r['readings_in_window']}/{r['readings_expected']}",
                f"{kiosk['pss_mib_end']:.0f}",
                f"{kiosk['rss_growth_mib']:+.2f}",
                f"{emulator['cpu_cores']:.3f}",
                f"{emulator['rss_mib_end']:.1f}",
                window_verdict(r),
            ]
        )
    if cabin_rows:
        common.print_table(
            "Whole cabin: the call seen by both pages, readings, the kiosk's PSS, and the Bluetooth emulator "
            "(dbus-daemon + bluezoo, not in the cabin's figures)",
            [
                "size",
                "doctor fps",
                "kiosk fps pro",
                "kiosk fps self",
                "videos playing",
                "readings",
                "kiosk pss",
                "kiosk rss growth",
                "emulator cpu",
                "emulator rss",
                "window",
            ],
            cabin_rows,
        )


def main() -> None:
    network = common.isolate_loopback()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20, help="measuring window per call (default 20)")
    parser.add_argument(
        "--minutes", type=float, default=1, help="length of the 640x480 cabine and cabin calls (default 1)"
    )
    parser.add_argument("--warmup", type=float, default=5, help="seconds of call before measuring (default 5)")
    parser.add_argument("--codec", default="vp8", choices=["vp8", "h264"])
    parser.add_argument("--tree", type=Path, help="measure the Cabine of another checkout (e.g. a git worktree)")
    parser.add_argument("--size", action="append", choices=[f"{w}x{h}" for w, h in SIZES], help="only this size")
    parser.add_argument("--system", action="append", choices=SYSTEMS, help="only this system (repeatable)")
    parser.add_argument(
        "--device-period",
        type=float,
        default=DEVICE_PERIOD,
        help=f"seconds between the emulated devices' measurements in the whole cabin (default {DEVICE_PERIOD:g})",
    )
    args = parser.parse_args()
    if args.tree is not None:
        global TREE
        TREE = args.tree.resolve()
    if args.device_period <= 0 or args.seconds <= 0:
        parser.error("--seconds and --device-period must be > 0")
    logging.basicConfig(level=logging.WARNING)
    print(f"network: {network}")
    results = asyncio.run(main_async(args))
    print_tables(results)
    payload = {"results": results, "machine": common.machine_info(), "network": network, "options": vars(args)}
    common.write_results("cpu_memory", payload)


if __name__ == "__main__":
    main()
