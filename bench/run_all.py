"""Every benchmark, one after the other (never two at once: the machine has two cores), with default options.

python bench/run_all.py            # about 15 minutes on the reference machine (2 cores)
python bench/run_all.py --quick    # a smoke run of each script (about 3 minutes), figures not to be quoted
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import common

SCRIPTS = ("signaling_capacity", "vitals_latency", "first_frame", "cpu_memory", "glass_to_glass")
QUICK = {
    "signaling_capacity": ["--levels", "50", "100", "--probes", "50", "--idle", "1"],
    "vitals_latency": ["--readings", "50"],
    "first_frame": ["--joins", "3"],
    "cpu_memory": ["--seconds", "5", "--minutes", "0", "--warmup", "1", "--size", "640x480"],
    "glass_to_glass": ["--runs", "1", "--frames", "60", "--warmup", "30", "--size", "640x480"],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short smoke runs")
    args = parser.parse_args()
    failed = []
    for name in SCRIPTS:
        started = time.monotonic()
        print(f"\n=== {name} ===", flush=True)
        extra = QUICK[name] if args.quick else []
        code = subprocess.call([sys.executable, str(common.ROOT / "bench" / f"{name}.py"), *extra], cwd=common.ROOT)
        print(f"=== {name}: exit {code}, {time.monotonic() - started:.0f} s", flush=True)
        if code != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
