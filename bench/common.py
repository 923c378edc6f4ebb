"""Shared helpers for the benchmark scripts (bench/ is a folder of scripts, not a package).

Each script runs from the repository root as `python bench/NAME.py`; importing this module puts the repository root
on sys.path so that `gateway` and `signaling` import from this checkout.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import datetime as dt
import fcntl
import json
import os
import platform
import resource
import shutil
import socket
import struct
import subprocess
import sys
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results"
WEBCLIENT = ROOT / "webclient"
LOOPBACK = ("127.0.0.1",)
# The end-to-end tests' Chromium, flags included (fake devices, loopback ICE, no background traffic).
from tests.browser import CHROMIUM_CANDIDATES, CHROMIUM_FLAGS  # noqa: E402

_CLONE_NEWNET = 0x40000000
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1


# --- keeping every packet on loopback --------------------------------------------------------------------------


def isolate_loopback() -> str:
    """Move this process (and all it starts) into a private network namespace whose only interface is loopback.

    Chromium gathers ICE candidates on every interface; in a namespace with only `lo` nothing can be addressed
    anywhere but 127.0.0.1. Needs root (as on the project's machines and CI); without it the scripts still keep
    aiortc on 127.0.0.1 and say so. Call it first thing, before any thread or event loop starts.
    """
    if {name for _, name in socket.if_nameindex()} <= {"lo"}:
        return "private network namespace (loopback only)"
    if os.geteuid() != 0:
        return "shared network namespace (not root): aiortc restricted to 127.0.0.1"
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(_CLONE_NEWNET) != 0:
        return f"shared network namespace (unshare failed: {os.strerror(ctypes.get_errno())})"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(s, _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))
    return "private network namespace (loopback only)"


def raise_open_files(wanted: int) -> int:
    """Raise the soft RLIMIT_NOFILE towards `wanted` (up to the hard limit); returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def subprocess_env() -> dict[str, str]:
    """The environment for child Python processes: this checkout first on the import path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


# --- statistics and output -------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile of no values")
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summarize(values: Sequence[float]) -> dict[str, float]:
    """n, mean, p50, p99, min and max of some values (all NaN-free)."""
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "mean": sum(values) / len(values),
        "p50": percentile(values, 50),
        "p99": percentile(values, 99),
        "min": min(values),
        "max": max(values),
    }


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def print_table(title: str, headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A plain-text table with right-aligned columns."""
    cells = [[str(h) for h in headers], *[[fmt(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    print(f"\n{title}")
    for i, row in enumerate(cells):
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


def _chromium_version() -> str:
    path = chromium_path()
    if path is None:
        return "absent"
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() or "unknown"


def machine_info() -> dict[str, Any]:
    """Date, machine and versions, recorded with every result."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "commit": commit or "unknown",
        "versions": {p: _version(p) for p in ("aiortc", "aioice", "aiohttp", "av", "numpy", "playwright")},
        "chromium": _chromium_version(),
    }


def write_results(name: str, payload: dict[str, Any]) -> Path:
    """Write bench/results/NAME-<UTC time>.json and NAME-latest.json; returns the dated path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    text = json.dumps(payload, indent=2, sort_keys=False, default=str)
    path = RESULTS / f"{name}-{stamp}.json"
    path.write_text(text)
    (RESULTS / f"{name}-latest.json").write_text(text)
    print(f"\nresults: {path.relative_to(ROOT)}")
    return path


# --- processes -------------------------------------------------------------------------------------------------

_TICKS = os.sysconf("SC_CLK_TCK")


async def stop_process(proc: Any) -> None:
    """Stop an asyncio child process: SIGTERM, then SIGKILL if it is still there after 15 s."""
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def rss_kib(pid: int) -> int:
    """Resident set size of one process in KiB (/proc/PID/status VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def machine_busy_seconds() -> float:
    """Non-idle CPU seconds of the whole machine so far, all cores (/proc/stat: all but idle and iowait)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _TICKS


def pss_kib(pid: int) -> int:
    """Proportional set size of one process in KiB (/proc/PID/smaps_rollup Pss)."""
    # Shared pages are split between their users: a process tree's PSS, unlike its RSS sum, counts each page once.
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def tree_pss_kib(pids: Iterable[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError):
            total += pss_kib(pid)
    return total


def process_name(pid: int) -> str:
    """A process's command name and first arguments, for saying which processes a figure counts."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    words = [Path(argv[0].decode(errors="replace")).name, *(a.decode(errors="replace") for a in argv[1:3] if a)]
    return " ".join(words)


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def tree_cpu_seconds(pids: Iterable[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += cpu_seconds(pid)
    return total


def tree_rss_kib(pids: Iterable[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError):
            total += rss_kib(pid)
    return total


def find_process(needle: str) -> int | None:
    """The oldest process whose command line contains `needle` (e.g. a Chromium profile path)."""
    best: tuple[float, int] | None = None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if needle not in cmdline or "--type=" in cmdline:
                continue
            start = float((entry / "stat").read_text().rsplit(")", 1)[1].split()[19])
        except (OSError, IndexError, ValueError):
            continue
        if best is None or start < best[0]:
            best = (start, int(entry.name))
    return best[1] if best else None


# --- Chromium --------------------------------------------------------------------------------------------------


def chromium_path() -> str | None:
    for candidate in CHROMIUM_CANDIDATES:
        if Path(candidate).exists():
            return candidate
    return shutil.which("chromium")


@contextlib.asynccontextmanager
async def chromium(profile_dir: Path, *, extra_args: Sequence[str] = ()) -> AsyncIterator[Any]:
    """Headless Debian Chromium with a fresh profile, driven by Playwright (as in tests/browser.py).

    Raises:
        SystemExit: Chromium is not installed.
    """
    from playwright.async_api import async_playwright

    executable = chromium_path()
    if executable is None:
        raise SystemExit("Chromium is required: apt-get install chromium")
    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            str(profile_dir),
            executable_path=executable,
            headless=True,
            args=[*CHROMIUM_FLAGS, *extra_args],
            ignore_https_errors=True,
            permissions=["camera", "microphone"],
            viewport={"width": 1280, "height": 800},
        )
        try:
            yield context
        finally:
            await context.close()


async def serve_bench_scripts(page: Any) -> None:
    """Let the doctor's page import the benchmark's own scripts (/static/bench/*) from the checkout.

    Signaling serves only its pages and what they use; the measuring scripts are the benchmark's, not the product's.
    """

    async def fulfil(route: Any) -> None:
        name = route.request.url.split("?", 1)[0].rsplit("/", 1)[1]
        path = WEBCLIENT / "bench" / name
        if path.is_file():
            await route.fulfill(path=str(path), content_type="text/javascript")
        else:
            await route.fulfill(status=404, body="not found")

    await page.route("**/static/bench/*", fulfil)


async def open_doctor_link(page: Any, link: str, *, admit: bool = False, timeout_ms: float = 20_000) -> None:
    """Open the doctor's link and join, as a doctor would.

    With `admit`, also press "Faire entrer" in the waiting room (for a demo process started without automatic
    admission); in-process benchmarks start the demo with DemoOptions(auto_admit=True) instead.
    """
    await serve_bench_scripts(page)
    await page.goto(link)
    await page.get_by_role("button", name="Rejoindre").click(timeout=timeout_ms)
    if admit:
        button = page.get_by_role("button", name="Faire entrer")
        await page.wait_for_function(
            "() => { const b = document.getElementById('admit'); return b && !b.disabled && !b.hidden; }",
            timeout=timeout_ms,
        )
        await button.click(timeout=timeout_ms)


# The doctor page exposes window.cabine.pc, the baseline pages window.bench.pc.
PEER_JS = "(window.cabine ?? window.bench ?? {}).pc"
WAIT_FRAMES_JS = f"""async ([frames, timeoutMs]) => {{
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {{
    const pc = {PEER_JS};
    if (pc) {{
      let decoded = 0;
      (await pc.getStats()).forEach((s) => {{
        if (s.type === "inbound-rtp" && s.kind === "video") decoded = s.framesDecoded || 0;
      }});
      if (decoded >= frames) return true;
    }}
    await new Promise((r) => setTimeout(r, 50));
  }}
  return false;
}}"""


async def wait_frames(page: Any, frames: int = 1, timeout_ms: float = 30_000) -> None:
    """Wait until the page's peer connection has decoded `frames` video frames.

    Raises:
        TimeoutError: it did not in time.
    """
    if not await page.evaluate(WAIT_FRAMES_JS, [frames, timeout_ms]):
        raise TimeoutError(f"no {frames} decoded video frames within {timeout_ms / 1000:.0f} s")


def demo_options(**fields: Any) -> Any:
    """DemoOptions for an in-process benchmark: loopback ICE, admission and check-in automatic, no cabin screen,
    the emulated thermometer's payloads handed straight to the decoders (no Bluetooth emulator processes).

    Options that this checkout's DemoOptions does not have are left out, so the scripts follow the demo as it grows.
    """
    from cabine.demo.run import DemoOptions

    wanted: dict[str, Any] = {
        "port": free_port(),
        "ice_addresses": LOOPBACK,
        "auto_admit": True,
        "auto_checkin": True,
        "kiosk_port": None,
        "devices": "direct",
        **fields,
    }
    known = DemoOptions.__dataclass_fields__
    return DemoOptions(**{k: v for k, v in wanted.items() if k in known})


# --- a small static server for the baseline pages --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Served:
    base_url: str


@contextlib.asynccontextmanager
async def static_server(app: Any | None = None) -> AsyncIterator[Served]:
    """Serve webclient/ under /static/ on 127.0.0.1 (over plain HTTP: 127.0.0.1 is a secure context)."""
    from aiohttp import web

    app = app if app is not None else web.Application()
    app.router.add_static("/static/", WEBCLIENT, follow_symlinks=False)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield Served(base_url=f"http://127.0.0.1:{port}")
    finally:
        await runner.cleanup()
