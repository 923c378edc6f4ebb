"""Markdown tables and the targets' verdicts from the latest results (bench/results/*-latest.json).

python bench/report.py > /tmp/figures.md     # then paste into docs/performance.md
"""

from __future__ import annotations

import json
from typing import Any

import common


def load(name: str) -> dict[str, Any] | None:
    path = common.RESULTS / f"{name}-latest.json"
    return json.loads(path.read_text()) if path.exists() else None


def load_cpu() -> tuple[dict[str, Any] | None, dict[str, dict[str, Any]]]:
    """The latest CPU run with every sender, and the longest 640x480 call of the call alone (`cabine`) and of the
    whole cabin (`cabin`), for RSS growth."""
    full, longest = None, {}
    for path in sorted(common.RESULTS.glob("cpu_memory-2*.json")):
        data = json.loads(path.read_text())
        results = data["results"]
        if len(results) >= 6:
            full = data
        for system in ("cabine", "cabin"):
            call = results.get(f"{system}/vp8/640x480")
            if call and (system not in longest or call["seconds"] >= longest[system]["seconds"]):
                longest[system] = call
    return full, longest


def f1(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def table(headers: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---:" for _ in headers) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def main() -> None:
    verdicts: list[list[str]] = []
    machine = None
    g2g = load("glass_to_glass")
    if g2g:
        machine = g2g["machine"]
        s = g2g["summary"]
        rows = []
        for codec in g2g["codecs"]:
            for size in g2g["sizes"]:
                browser = s.get(f"browser/{codec}/{size}")
                bare = s.get(f"aiortc/{codec}/{size}")
                for system in ("cabine", "aiortc", "browser"):
                    e = s.get(f"{system}/{codec}/{size}")
                    if not e or not e["latency_ms"].get("n"):
                        continue
                    lat = e["latency_ms"]
                    vs_browser = lat["mean"] / browser["latency_ms"]["mean"] if browser else None
                    vs_bare = lat["mean"] / bare["latency_ms"]["mean"] if bare else None
                    runs = ", ".join(f"{m:.0f}" for m in e["run_means_ms"])
                    split = e.get("capture_to_receive_ms", {})
                    shown = e.get("receive_to_display_ms", {})
                    rows.append(
                        [
                            codec.upper(),
                            size,
                            system,
                            lat["n"],
                            f1(lat["mean"]),
                            f1(lat["p50"]),
                            f1(lat["p99"]),
                            runs,
                            f1(split.get("mean")),
                            f1(shown.get("mean")),
                            f1(e["jitter_buffer_ms"]),
                            "-" if vs_browser is None else f"{vs_browser:.2f}",
                            "-" if vs_bare is None else f"{vs_bare:.2f}",
                        ]
                    )
                cab = s.get(f"cabine/{codec}/{size}")
                if cab and browser:
                    ratio = cab["latency_ms"]["mean"] / browser["latency_ms"]["mean"]
                    verdicts.append(
                        [
                            f"Glass-to-glass mean {codec.upper()} {size} <= browser-to-browser",
                            f"{cab['latency_ms']['mean']:.1f} ms vs {browser['latency_ms']['mean']:.1f} ms "
                            f"({ratio:.2f}x)",
                            "met" if ratio <= 1.0 else "not met",
                        ]
                    )
        print("### Glass-to-glass latency (ms)\n")
        print(
            table(
                [
                    "codec",
                    "size",
                    "sender",
                    "frames",
                    "mean",
                    "p50",
                    "p99",
                    "run means",
                    "to arrival",
                    "arrival to display",
                    "jitter buffer",
                    "x browser",
                    "x bare aiortc",
                ],
                rows,
            )
        )
        print()
    cpu, soaks = load_cpu()
    if cpu:
        machine = machine or cpu["machine"]
        r = cpu["results"]
        rows = []
        for key, e in r.items():
            system, codec, size = key.split("/")
            base = r.get(f"browser/{codec}/{size}")
            bare = r.get(f"aiortc/{codec}/{size}")
            call = r.get(f"cabine/{codec}/{size}")
            kiosk, both = e.get("kiosk"), e.get("gateway_and_kiosk")
            rows.append(
                [
                    codec.upper(),
                    size,
                    system,
                    f"{e['cpu_cores']:.3f}",
                    "-" if not kiosk else f"{kiosk['cpu_cores']:.3f}",
                    "-" if not both else f"{both['cpu_cores']:.3f}",
                    "-" if not base else f"{e['cpu_cores'] / base['cpu_cores']:.2f}",
                    "-" if not bare else f"{e['cpu_cores'] / bare['cpu_cores']:.2f}",
                    "-" if not (call and system == "cabin") else f"{e['cpu_cores'] / call['cpu_cores']:.2f}",
                    "-" if not (call and both) else f"{both['cpu_cores'] / call['cpu_cores']:.2f}",
                    f1(e["rss_mib_end"]),
                    "-" if not kiosk else f1(kiosk["rss_mib_end"]),
                    f"{e['rss_growth_mib']:+.2f}",
                    f"{e['seconds']:.0f}",
                    f"{e['load']['other_cores']:.2f}" if "load" in e else "-",
                ]
            )
        print("### CPU and memory during a sendrecv call at 30 fps\n")
        print(
            table(
                [
                    "codec",
                    "size",
                    "system",
                    "CPU (cores)",
                    "kiosk CPU",
                    "gateway + kiosk CPU",
                    "x browser",
                    "x bare aiortc",
                    "x cabine",
                    "sum x cabine",
                    "RSS MiB",
                    "kiosk RSS MiB",
                    "RSS growth",
                    "s",
                    "others' load (cores)",
                ],
                rows,
            )
        )
        print()
        cabin_rows = []
        for key, e in r.items():
            if not key.startswith("cabin/"):
                continue
            fps = e.get("fps", {})
            cabin_rows.append(
                [
                    key.split("/")[2],
                    f1(fps.get("doctor_video")),
                    f1(fps.get("kiosk_professional")),
                    f1(fps.get("kiosk_self")),
                    f"{e['readings_in_window']}/{e['readings_expected']}",
                    f1(e["kiosk"]["pss_mib_end"]),
                    f1(e["gateway_and_kiosk"]["rss_mib_end"]),
                    f1(e["gateway_and_kiosk"]["pss_mib_end"]),
                    f"{e['emulator']['cpu_cores']:.3f}",
                    f1(e["emulator"]["rss_mib_end"]),
                    "stalled" if "call_stalled_at_s" in e else ", ".join(e.get("fps_low", [])) or "ok",
                ]
            )
        if cabin_rows:
            print("### Whole cabin: both pages, the readings, and the Bluetooth emulator (not counted above)\n")
            print(
                table(
                    [
                        "size",
                        "doctor fps",
                        "kiosk fps (professional)",
                        "kiosk fps (self)",
                        "readings",
                        "kiosk PSS MiB",
                        "gateway + kiosk RSS MiB",
                        "gateway + kiosk PSS MiB",
                        "emulator CPU",
                        "emulator RSS MiB",
                        "low or stalled",
                    ],
                    cabin_rows,
                )
            )
            print()
        for size, limit in (("640x480", 0.25), ("1280x720", 0.6)):
            e = r.get(f"cabine/vp8/{size}")
            if e:
                verdicts.append(
                    [
                        f"Gateway CPU {size}@30 VP8 sendrecv <= {limit} core",
                        f"{e['cpu_cores']:.3f} core",
                        "met" if e["cpu_cores"] <= limit else "not met",
                    ]
                )
        # Issue 11's targets for the whole cabin (screen on, Bluetooth path), beside the call alone.
        for size, group, label, limit in (
            ("640x480", None, "gateway", 0.35),
            ("640x480", "gateway_and_kiosk", "gateway + kiosk browser", 0.8),
            ("1280x720", None, "gateway", 0.7),
        ):
            e = r.get(f"cabin/vp8/{size}")
            if e:
                figure = e[group] if group else e
                call = r.get(f"cabine/vp8/{size}")
                beside = f" (call alone {call['cpu_cores']:.3f})" if call else ""
                # A cabin that dropped frames did less than the call asks: say so beside the figure; a stalled
                # window describes an idle cabin and judges nothing.
                low = ", ".join(e.get("fps_low", []))
                stalled = "call_stalled_at_s" in e
                verdicts.append(
                    [
                        f"Whole cabin {size}@30, {label} <= {limit} core",
                        f"{figure['cpu_cores']:.3f} core{beside}" + (f"; frame rate low: {low}" if low else ""),
                        "not judged (the call stalled)"
                        if stalled
                        else "met"
                        if figure["cpu_cores"] <= limit
                        else "not met",
                    ]
                )
        for system, what in (("cabine", "the call alone"), ("cabin", "the whole cabin's gateway")):
            e = soaks.get(system)
            if not e:
                continue
            minutes = e["seconds"] / 60
            growth = e.get("rss_growth_after_1min_mib", e["rss_growth_mib"])
            verdicts.append(
                [
                    f"RSS growth <= 5 MB over 30 minutes ({what})",
                    (
                        f"{growth:+.2f} MiB from minute 1 to minute {minutes:.0f}"
                        if minutes > 2
                        else f"{growth:+.2f} MiB over {minutes:.0f} min"
                    )
                    + f" (slope {e['rss_slope_mib_per_min']:+.3f} MiB/min)",
                    ("met" if growth <= 5 else "not met") if minutes >= 29 else "not measured here (run --minutes 30)",
                ]
            )
    vitals = load("vitals_latency")
    if vitals:
        rows = []
        for label, key in (
            ("sent by the gateway", "sent_ms"),
            ("arrived in the page", "arrived_ms"),
            ("in the DOM", "dom_ms"),
            ("next frame", "next_frame_ms"),
        ):
            e = vitals.get(key) or {}
            rows.append([label, e.get("n"), f1(e.get("mean")), f1(e.get("p50")), f1(e.get("p99")), f1(e.get("max"))])
        print("### Vitals latency (ms): device notification in the gateway to the doctor's page\n")
        print(table(["reached", "readings", "mean", "p50", "p99", "max"], rows))
        print()
        p99 = vitals["dom_ms"]["p99"]
        verdicts.append(
            [
                "Vitals p99 <= 10 ms, device notification to the reading rendered in the doctor's page",
                f"{p99:.1f} ms in the DOM (arrived {vitals['arrived_ms']['p99']:.1f} ms, "
                f"next frame {vitals['next_frame_ms']['p99']:.1f} ms)",
                "met" if p99 <= 10 else "not met",
            ]
        )
    first = load("first_frame")
    if first:
        rows = []
        s = first["summary"]
        for system, e in s.items():
            rows.append(
                [
                    system,
                    e["n"],
                    f1(e["mean"]),
                    f1(e["p50"]),
                    f1(e["p99"]),
                    f1(e["min"]),
                    f1(e["max"]),
                    f"{e['p50'] / s['aiortc']['p50']:.2f}",
                ]
            )
        print("### Link to first frame (ms from opening the link)\n")
        print(table(["system", "joins", "mean", "p50", "p99", "min", "max", "p50 x bare aiortc"], rows))
        print()
        p50 = s["cabine"]["p50"]
        verdicts.append(["Link to first frame median <= 1 s", f"{p50:.0f} ms", "met" if p50 <= 1000 else "not met"])
    sig = load("signaling_capacity")
    if sig:
        rows = []
        for level, e in sig["levels"].items():
            p, fl = e["probe_join_ms"], e["fill_join_ms"]
            rows.append(
                [
                    level,
                    e["websockets"],
                    f1(p["p50"]),
                    f1(p["p99"]),
                    f1(fl["p50"]),
                    f1(fl["p99"]),
                    f"{e['server_cpu_cores_while_filling']:.2f}",
                    f"{e['server_cpu_cores_idle']:.3f}",
                    f"{e['server_rss_mib']:.0f}",
                ]
            )
        print("### Signaling capacity (one process)\n")
        print(
            table(
                [
                    "rooms",
                    "WebSockets",
                    "join p50",
                    "join p99",
                    "fill p50",
                    "fill p99",
                    "CPU filling",
                    "CPU idle",
                    "RSS MiB",
                ],
                rows,
            )
        )
        print()
        top = sig["levels"].get("1000")
        if top:
            p99 = top["probe_join_ms"]["p99"]
            verdicts.append(
                ["1,000 rooms on one process, join p99 <= 50 ms", f"{p99:.1f} ms", "met" if p99 <= 50 else "not met"]
            )
    print("### Targets\n")
    print(table(["target", "figure", "verdict"], verdicts))
    if machine:
        v = machine["versions"]
        print(
            f"\nMachine: {machine['date']}, {machine['nproc']} cores ({machine['cpu']}), {machine['memory_gib']} GiB,"
            f" Linux {machine['kernel']}, Python {machine['python']}, aiortc {v['aiortc']}, aioice {v['aioice']},"
            f" aiohttp {v['aiohttp']}, av {v['av']}, {machine['chromium']}, commit {machine['commit']}."
        )


if __name__ == "__main__":
    main()
