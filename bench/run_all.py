"""Run every benchmark and print a summary of target vs measured (`make bench`).

.venv/bin/python bench/run_all.py [--quick] [--markdown] [--json results.json] [--only name,name]
"""

import importlib
import json
import os
import sys
import time
import traceback

import benchlib
from benchlib import Report

BENCHMARKS = [
    "audio_analysis",
    "voice_synthesis",
    "avatar_render_speed",
    "photo_validation",
    "pages_load",
    "job_orchestration",
    "upload_memory",
    "wizard_load",
]


def main() -> int:
    args = sys.argv[1:]
    quick, markdown = "--quick" in args, "--markdown" in args
    names = BENCHMARKS
    if "--only" in args:
        names = args[args.index("--only") + 1].split(",")
    info = benchlib.machine()
    print(
        f"{info['date']} | {info['nproc']} x {info['cpu']} | {info['ram_gib']} GiB | Python {info['python']} | "
        f"load average at start {os.getloadavg()[0]:.2f}"
    )
    started = time.perf_counter()
    reports: list[Report] = []
    for name in names:
        module = importlib.import_module(name)
        began = time.perf_counter()
        try:
            report = module.run(quick=quick)
        except Exception:  # noqa: BLE001 - one broken bench must not hide the others
            report = Report(name)
            report.check(name, "runs", "ERROR", False)
            report.notes.append(traceback.format_exc())
        report.seconds = time.perf_counter() - began
        report.print(markdown=markdown)
        reports.append(report)
    total = time.perf_counter() - started
    rows = [[r.name, c.what, c.target, c.measured, c.verdict] for r in reports for c in r.checks]
    rows.append(["make bench", "total time on this machine", "< 10 min", f"{total / 60:.1f} min", _ok(total < 600)])
    out = benchlib.print_markdown if markdown else benchlib.print_table
    out("Summary", ["benchmark", "what", "target", "measured", "verdict"], rows)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}; total {total:.0f} s")
    if "--json" in args:
        path = args[args.index("--json") + 1]
        with open(path, "w") as f:
            json.dump(
                {"machine": info, "seconds": total, "reports": [r.as_dict() for r in reports]}, f, indent=1, default=str
            )
    return 0


def _ok(passed: bool) -> str:
    return "PASS" if passed else "MISS"


if __name__ == "__main__":
    sys.exit(main())
