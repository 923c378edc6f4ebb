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


def load_cpu() -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The latest CPU run with every sender, and the longest Cabine 640x480 call (for RSS growth)."""
    full, longest = None, None
    for path in sorted(common.RESULTS.glob("cpu_memory-2*.json")):
        data = json.loads(path.read_text())
        results = data["results"]
        if len(results) >= 6:
            full = data
        call = results.get("cabine/vp8/640x480")
        if call and (longest is None or call["seconds"] >= longest["seconds"]):
            longest = call
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
    cpu, soak = load_cpu()
    if cpu:
        machine = machine or cpu["machine"]
        r = cpu["results"]
        rows = []
        for key, e in r.items():
            system, codec, size = key.split("/")
            base = r.get(f"browser/{codec}/{size}")
            bare = r.get(f"aiortc/{codec}/{size}")
            rows.append(
                [
                    codec.upper(),
                    size,
                    system,
                    f"{e['cpu_cores']:.3f}",
                    "-" if not base else f"{e['cpu_cores'] / base['cpu_cores']:.2f}",
                    "-" if not bare else f"{e['cpu_cores'] / bare['cpu_cores']:.2f}",
                    f1(e["rss_mib_end"]),
                    f"{e['rss_growth_mib']:+.2f}",
                    f"{e['seconds']:.0f}",
                ]
            )
        print("### CPU and memory during a sendrecv call at 30 fps\n")
        print(
            table(
                ["codec", "size", "sender", "CPU (cores)", "x browser", "x bare aiortc", "RSS MiB", "RSS growth", "s"],
                rows,
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
        e = soak
        if e:
            minutes = e["seconds"] / 60
            verdicts.append(
                [
                    "RSS growth <= 5 MB over 30 minutes",
                    f"{e.get('rss_growth_after_1min_mib', e['rss_growth_mib']):+.2f} MiB from minute 1 to "
                    f"minute {minutes:.0f} (slope {e['rss_slope_mib_per_min']:+.3f} MiB/min)",
                    ("met" if e.get("rss_growth_after_1min_mib", e["rss_growth_mib"]) <= 5 else "not met")
                    if minutes >= 29
                    else "not measured here (run --minutes 30)",
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
