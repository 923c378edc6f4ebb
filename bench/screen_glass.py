"""Professional-to-cabin-screen glass-to-glass: the doctor's camera to its display on the cabin screen.

The other direction of bench/glass_to_glass.py. `cabine demo` with its cabin screen on runs as its own process; the
doctor's page in one headless Chromium, whose camera is replaced by the stamped test pattern (a canvas, drawn with
webclient/bench/stamp.js at the requested size and 30 fps, sent by captureStream); the cabin screen in a second
headless Chromium. For each frame the cabin screen shows, the stamp is read back from the professional's video
element in requestVideoFrameCallback: (timeOrigin + expectedDisplayTime) - capture time, one clock (one machine).
The same page also gives its audio and video playout delays, for lip sync (jitterBufferDelay per emitted unit).

    python bench/screen_glass.py                              # 3 runs x 300 frames, 640x480 and 1280x720
    python bench/screen_glass.py --tree /tmp/cabine-before    # the same for another checkout (e.g. a git worktree)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
from pathlib import Path
from typing import Any

import common
from cpu_memory import after, child, demo_args

SIZES = ((640, 480), (1280, 720))

# The doctor's camera: the stamped pattern instead of Chromium's fake device (the microphone stays the fake one).
STAMPED_CAMERA_JS = """(() => {
  const original = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = async (constraints) => {
    const stream = await original({ audio: constraints?.audio ?? false });
    if (!constraints?.video) return stream;
    const { drawStamp } = await import("/static/bench/stamp.js");
    const [width, height] = window.__benchSize ?? [640, 480];
    const canvas = document.createElement("canvas");
    canvas.width = width; canvas.height = height;
    const ctx = canvas.getContext("2d");
    let frame = 0;
    const start = performance.now();
    const tick = () => {
      ctx.fillStyle = "#406080"; ctx.fillRect(0, 0, width, height);
      ctx.fillStyle = "#ebebeb"; ctx.fillRect((frame * 4) % (width - 16), height / 2, 16, height / 4);
      drawStamp(ctx, width, Date.now(), frame);
      frame += 1;
      setTimeout(tick, Math.max(0, start + frame * 1000 / 30 - performance.now()));
    };
    tick();
    const video = canvas.captureStream().getVideoTracks()[0];
    video.contentHint = "detail";
    return new MediaStream([...stream.getAudioTracks(), video]);
  };
})();"""

MEASURE_JS = """async ([frames, timeoutMs]) => {
  const stamp = await import("/static/bench/stamp.js");
  const video = document.getElementById("professional");
  const r = await stamp.measureGlassToGlass(video, window.cabine.pc, {frames, warmup: 60, timeoutMs});
  const delays = {};
  (await window.cabine.pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.jitterBufferEmittedCount)
      delays[s.kind] = 1000 * s.jitterBufferDelay / s.jitterBufferEmittedCount;
  });
  return {reason: r.reason, latencies: r.latencies, unreadable: r.unreadable, width: r.width, height: r.height,
          playout_delay_ms: delays};
}"""


async def one_run(
    doctor_browser: Any, kiosk_browser: Any, size: tuple[int, int], args: argparse.Namespace, tmp: Path
) -> dict[str, Any]:
    name = f"screen-{size[0]}x{size[1]}-{time.monotonic_ns()}"
    demo = [*demo_args(tmp, name, size, "vp8"), "--kiosk-port", str(common.free_port())]
    async with child(demo, "Doctor link:", root=args.tree) as (_pid, lines):
        kiosk = await kiosk_browser.new_page()
        doctor = await doctor_browser.new_page()
        try:
            await common.serve_bench_scripts(kiosk)
            await common.serve_bench_scripts(doctor)
            await doctor.add_init_script(f"window.__benchSize = [{size[0]}, {size[1]}];")
            await doctor.add_init_script(STAMPED_CAMERA_JS)
            await kiosk.goto(after(lines, "Cabin screen:"))
            await kiosk.wait_for_selector("body[data-state=idle]", timeout=20_000)
            await kiosk.get_by_role("button", name="Commencer").click()
            await kiosk.wait_for_selector("body[data-state=waiting]", timeout=20_000)
            await common.open_doctor_link(doctor, after(lines, "Doctor link:"), admit=True)
            await kiosk.wait_for_selector("body[data-state=in-call]", timeout=30_000)
            await kiosk.wait_for_function(
                "() => document.getElementById('professional').videoWidth > 0", timeout=30_000
            )
            return await kiosk.evaluate(MEASURE_JS, [args.frames, 120_000])
        finally:
            await doctor.close()
            await kiosk.close()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="cabine-screen-glass-") as tmp_name:
        tmp = Path(tmp_name)
        async with (
            common.chromium(tmp / "doctor-profile") as doctor_browser,
            common.chromium(tmp / "kiosk-profile") as kiosk_browser,
        ):
            for size in args.sizes:
                runs = []
                for i in range(args.runs):
                    run = await one_run(doctor_browser, kiosk_browser, size, args, tmp)
                    latencies = run.pop("latencies")
                    run.update(common.summarize(latencies) if latencies else {"n": 0})
                    runs.append(run)
                    print(f"{size[0]}x{size[1]} run {i + 1}: {run}", flush=True)
                means = [r["mean"] for r in runs if r.get("n")]
                out[f"{size[0]}x{size[1]}"] = {
                    "runs": runs,
                    "mean_of_means_ms": sum(means) / len(means) if means else None,
                }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--size", action="append", help="WIDTHxHEIGHT (default both 640x480 and 1280x720)")
    parser.add_argument("--tree", type=Path, default=common.ROOT, help="the checkout to run (default this one)")
    args = parser.parse_args()
    args.sizes = [tuple(int(v) for v in s.split("x")) for s in args.size] if args.size else list(SIZES)
    args.tree = args.tree.resolve()
    body = asyncio.run(main_async(args))
    rows = []
    for size, figures in body.items():
        runs = figures["runs"]
        rows.append(
            [
                size,
                common.fmt(figures["mean_of_means_ms"], 1),
                " ".join(common.fmt(r.get("p50"), 0) for r in runs),
                " ".join(common.fmt(r.get("p99"), 0) for r in runs),
                " ".join(common.fmt(r["playout_delay_ms"].get("audio"), 0) for r in runs),
                " ".join(common.fmt(r["playout_delay_ms"].get("video"), 0) for r in runs),
            ]
        )
    common.print_table(
        f"professional -> cabin screen glass-to-glass ({args.tree})",
        ["size", "mean ms", "p50 per run", "p99 per run", "audio jitter buffer ms", "video jitter buffer ms"],
        rows,
    )
    body["options"] = {k: str(v) for k, v in vars(args).items()}
    body["machine"] = common.machine_info()
    common.write_results("screen-glass", body)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
