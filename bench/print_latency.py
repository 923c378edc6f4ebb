"""From "send" on the professional's console to the first printed page in the cabin, for a 1 MB PDF.

The demo (signaling, one cabin with its screen) runs in this process with a private CUPS scheduler whose queue
prints to PDF files through cups-pdf (as in the tests: needs root and Debian's cups, cups-client and
printer-driver-cups-pdf). The adviser's console and the cabin screen are two pages of one headless Chromium. Each
run sends a fresh 2-page PDF of about 1 MB (two scanned-looking pages: JPEG noise), then, as soon as the cabin
screen shows its first page, presses "Imprimer" as the citizen would, and waits for the PDF to come out of the
queue. The citizen's own reading time is left out: it is theirs.

Figures per run: transfer (send -> the console says it is shown in the cabin), the cabin screen's first page drawn,
printing (press -> the page is out), and the total send -> first printed page. Beside it, the baseline in the same
run: the same file given straight to `lp` (CUPS alone, no Cabine), press -> page out.

    sudo .venv/bin/python bench/print_latency.py            # 7 runs
    sudo .venv/bin/python bench/print_latency.py --runs 15
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import av
import common
import numpy as np

from cabine.demo.run import DemoOptions, run_demo
from gateway.documents.photo import encode_jpeg
from signaling.protocol import AppointmentKind
from tests.cups import PrivateCups
from tests.kiosk.test_cabin_screen_browser import in_call

TARGET_BYTES = 1_000_000
A4 = (595, 842)


def noise_jpeg(seed: int, width: int = 1240, height: int = 1754, quality: int = 12) -> bytes:
    """A page-sized JPEG that compresses like a scan (noise over paper grey), different for every seed."""
    rng = np.random.default_rng(seed)
    pixels = (rng.normal(200, 40, (height, width, 3))).clip(0, 255).astype(np.uint8)
    return encode_jpeg(av.VideoFrame.from_ndarray(pixels, format="rgb24"), quality=quality)


def image_pdf(images: list[tuple[bytes, int, int]]) -> bytes:
    """A PDF with one full-page JPEG per page (what a scanned contract looks like)."""
    objects: list[bytes] = [b"<< /Type /Catalog /Pages 2 0 R >>", b""]
    kids = []
    for data, width, height in images:
        image = len(objects) + 1
        objects.append(
            f"<< /Type /XObject /Subtype /Image /Width {width} /Height {height} /ColorSpace /DeviceRGB "
            f"/BitsPerComponent 8 /Filter /DCTDecode /Length {len(data)} >>\nstream\n".encode()
            + data
            + b"\nendstream"
        )
        draw = f"q {A4[0]} 0 0 {A4[1]} 0 0 cm /Im0 Do Q".encode()
        content = len(objects) + 1
        objects.append(b"<< /Length %d >>\nstream\n" % len(draw) + draw + b"\nendstream")
        kids.append(len(objects) + 1)
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {A4[0]} {A4[1]}] "
            f"/Resources << /XObject << /Im0 {image} 0 R >> >> /Contents {content} 0 R >>".encode()
        )
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(f'{k} 0 R' for k in kids)}] /Count {len(kids)} >>".encode()
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def one_megabyte_pdf(seed: int) -> bytes:
    """The 2-page PDF closest to 1 MB among a few JPEG qualities."""
    made = [
        image_pdf([(noise_jpeg(seed * 10 + page, quality=q), 1240, 1754) for page in range(2)]) for q in (10, 11, 12)
    ]
    return min(made, key=lambda pdf: abs(len(pdf) - TARGET_BYTES))


async def printed_after(cups: PrivateCups, before: int, timeout: float = 120) -> float:
    """When a new, complete PDF is out of the queue (monotonic time); polled every 10 ms."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = cups.printed()
        if len(out) > before and out[-1].read_bytes().rstrip().endswith(b"%%EOF"):
            return time.monotonic()
        await asyncio.sleep(0.01)
    raise TimeoutError("nothing printed")


async def bench(runs: int, work: Path) -> dict[str, Any]:
    rows: list[dict[str, float]] = []
    async with PrivateCups() as cups:
        os.environ["CUPS_SERVER"] = cups.server
        options = DemoOptions(
            port=common.free_port(),
            data_dir=work / "data",
            ice_addresses=("127.0.0.1",),
            kiosk_port=common.free_port(),
            appointment_kind=AppointmentKind.ENERGY,
            devices="none",
            printer_queue=cups.queue,
        )
        async with run_demo(options) as demo, common.chromium(work / "profile") as browser:
            cabin, adviser = await in_call(browser, demo)
            await adviser.locator("#send-doc-button").wait_for(timeout=20_000)
            for run in range(runs):
                pdf = one_megabyte_pdf(run)
                path = work / f"contrat-{run}.pdf"
                path.write_bytes(pdf)
                before = len(cups.printed())
                # Baseline: the same file given straight to CUPS.
                started = time.monotonic()
                await cups.run("lp", "-d", cups.queue, str(path))
                baseline = await printed_after(cups, before) - started
                await cups.run("cancel", "-a", "-x", cups.queue)
                before = len(cups.printed())

                sent = time.monotonic()
                await adviser.locator("#send-doc").set_input_files(str(path))
                await adviser.get_by_text(f"{path.name} : affiché dans la cabine").wait_for(timeout=60_000)
                shown = time.monotonic()
                await cabin.wait_for_function(
                    f"() => {{ const i = document.getElementById('doc-page'); return i.complete && i.naturalWidth > 0"
                    f" && i.getAttribute('src')?.includes('/1.png') && document.getElementById('documents-title')"
                    f".textContent.includes('{path.name}'); }}",
                    timeout=60_000,
                )
                drawn = pressed = time.monotonic()
                await cabin.locator("#doc-print").click()
                out = await printed_after(cups, before)
                rows.append(
                    {
                        "bytes": len(pdf),
                        "transfer_s": shown - sent,
                        "screen_page_s": drawn - shown,
                        "print_s": out - pressed,
                        "total_s": out - sent,
                        "baseline_lp_s": baseline,
                    }
                )
                print(
                    f"run {run + 1}: {len(pdf) / 1e6:.2f} MB, send -> shown {shown - sent:.2f} s, page drawn "
                    f"{drawn - shown:.2f} s, press -> printed {out - pressed:.2f} s, total {out - sent:.2f} s "
                    f"(lp alone {baseline:.2f} s)",
                    flush=True,
                )
                await adviser.get_by_text(f"{path.name} : imprimé dans la cabine").wait_for(timeout=30_000)
    return {"runs": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="documents sent and printed (default 7)")
    args = parser.parse_args()
    if not 1 <= args.runs <= 100:
        parser.error("--runs must be 1 to 100")
    if os.geteuid() != 0:
        print(
            "print_latency: a private CUPS scheduler needs root (it runs its filters as the lp user)", file=sys.stderr
        )
        return 2
    with tempfile.TemporaryDirectory(prefix="cabine-print-bench-") as work:
        result = asyncio.run(bench(args.runs, Path(work)))
    rows = result["runs"]
    keys = ("transfer_s", "screen_page_s", "print_s", "total_s", "baseline_lp_s")
    summary = {key: common.summarize([row[key] for row in rows]) for key in keys}
    common.print_table(
        f"Send -> first printed page, {len(rows)} runs of a {rows[0]['bytes'] / 1e6:.2f} MB PDF (seconds)",
        ["step", "p50", "min", "max"],
        [(key, summary[key]["p50"], summary[key]["min"], summary[key]["max"]) for key in keys],
    )
    ratio = summary["print_s"]["p50"] / summary["baseline_lp_s"]["p50"]
    print(f"\nprinting through Cabine / lp alone (medians): {ratio:.2f}")
    common.write_results(
        "print_latency", {"machine": common.machine_info(), "summary": summary, "ratio_print_to_lp": ratio, **result}
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
