"""Markdown tables of medians and ratios from the bench/ pytest-benchmark JSON files.

Usage:

    python -m pytest bench/bench_layer.py -p no:cacheprovider --benchmark-only --benchmark-json=bench-layer.json
    python -m pytest bench/bench_fit.py -p no:cacheprovider --benchmark-only --benchmark-json=bench-fit.json
    python -m pytest bench/bench_auto_swap.py -p no:cacheprovider --benchmark-only \
        --benchmark-json=bench-auto-swap.json
    python bench/report.py bench-layer.json bench-fit.json bench-auto-swap.json [--out report.md]

Prints (and with --out also writes):

* the machine: CPU model (/proc/cpuinfo), core count, torch version and threads, load average at
  the start of the run, as recorded in each JSON by bench/conftest.py (or, for JSON without
  that record, read from this machine and marked so);
* a summary, one row per benchmark group: the median of the kanswap entry marked ``ref`` (the
  fastest kanswap entry where none is marked), of pykan, flashkan, inkan and nn.Linear, and the
  ratios pykan / kanswap, flashkan / kanswap, inkan / kanswap (how many times faster kanswap is)
  and kanswap / nn.Linear (how far above the GEMM lower bound); columns without data are left out;
* every entry: median, min, rounds x iterations, its time over the group's kanswap time, and what
  it recorded in extra_info (final losses, connection costs).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys

OTHERS = ["pykan", "flashkan", "inkan", "nn.Linear"]
RATIOS = [("pykan", "pykan / kanswap"), ("flashkan", "flashkan / kanswap"), ("inkan", "inkan / kanswap")]
NOTE_KEYS = ["train_loss", "train_acc", "test_acc", "cost_before", "cost_after", "cpu_kernels", "import_build_s",
             "first_call_s", "warm_call_s"]


def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale or unit == "µs":
            value = seconds / scale
            return f"{value:.3g} {unit}" if value < 100 else f"{value:.0f} {unit}"
    raise AssertionError


def fmt_ratio(num: float | None, den: float | None) -> str:
    if num is None or den is None or den <= 0:
        return "–"
    r = num / den
    return f"{r:.3g}×" if r < 100 else f"{r:.0f}×"


def local_machine() -> dict:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import torch

        version, threads = torch.__version__, torch.get_num_threads()
    except ImportError:
        version, threads = "not installed", None
    return {"cpu_model": model, "cpu_count": os.cpu_count(), "torch_version": version, "torch_threads": threads}


def machine_line(path: str, data: dict) -> str:
    info = data.get("machine_info", {}).get("kanswap_bench")
    where = ""
    if info is None:
        info, where = local_machine(), " (read from this machine: the JSON has no kanswap_bench record)"
    parts = [f"{info.get('cpu_model')}", f"{info.get('cpu_count')} cores"]
    if info.get("cpu_affinity") and info.get("cpu_affinity") != info.get("cpu_count"):
        parts.append(f"{info['cpu_affinity']} usable")
    parts.append(f"torch {info.get('torch_version')}")
    if info.get("torch_threads") is not None:
        n = info["torch_threads"]
        parts.append(f"{n} thread{'' if n == 1 else 's'}")
    load = info.get("load_avg_at_start")
    if load:
        parts.append("load avg at start " + "/".join(f"{v:.2f}" for v in load))
    date = data.get("datetime", "")
    return f"- `{os.path.basename(path)}` ({date[:19]}): " + ", ".join(parts) + where


def load(paths: list[str]) -> tuple[list[str], dict[str, list[dict]]]:
    machines, groups = [], {}
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        machines.append(machine_line(path, data))
        for bench in data.get("benchmarks", []):
            extra = bench.get("extra_info", {})
            stats = bench["stats"]
            groups.setdefault(bench.get("group") or bench["name"], []).append({
                "name": bench["name"],
                "impl": extra.get("impl", "?"),
                "variant": extra.get("variant", ""),
                "ref": bool(extra.get("ref")),
                "median": stats["median"],
                "min": stats["min"],
                "rounds": stats["rounds"],
                "iterations": stats.get("iterations", 1),
                "extra": extra,
            })
    return machines, groups


def kanswap_time(entries: list[dict]) -> float | None:
    refs = [e["median"] for e in entries if e["impl"] == "kanswap" and e["ref"]]
    if refs:
        return min(refs)
    own = [e["median"] for e in entries if e["impl"] == "kanswap"]
    return min(own) if own else None


def impl_time(entries: list[dict], impl: str) -> float | None:
    times = [e["median"] for e in entries if e["impl"] == impl]
    return min(times) if times else None


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


def report(paths: list[str]) -> str:
    machines, groups = load(paths)
    lines = ["## Machine", "", *machines, ""]

    present = [impl for impl in OTHERS if any(impl_time(e, impl) is not None for e in groups.values())]
    ratios = [(impl, title) for impl, title in RATIOS if impl in present]
    header = ["group", "kanswap", *present, *(title for _, title in ratios)]
    if "nn.Linear" in present:
        header.append("kanswap / nn.Linear")
    rows = []
    for name, entries in groups.items():
        ks = kanswap_time(entries)
        row = [name, fmt_time(ks)] + [fmt_time(impl_time(entries, impl)) for impl in present]
        row += [fmt_ratio(impl_time(entries, impl), ks) for impl, _ in ratios]
        if "nn.Linear" in present:
            row.append(fmt_ratio(ks, impl_time(entries, "nn.Linear")))
        rows.append(row)
    lines += ["## Summary (medians; a ratio X / kanswap above 1 means kanswap is faster)", ""]
    lines += table(header, rows) + [""]

    rows = []
    for name, entries in groups.items():
        ks = kanswap_time(entries)
        for e in sorted(entries, key=lambda e: e["median"]):
            notes = ", ".join(f"{k}={e['extra'][k]:.4g}" for k in NOTE_KEYS
                              if isinstance(e["extra"].get(k), (int, float)))
            impl = e["impl"] + (" (ref)" if e["ref"] else "")
            rows.append([name, impl, e["variant"], fmt_time(e["median"]), fmt_time(e["min"]),
                         f"{e['rounds']}×{e['iterations']}", fmt_ratio(e["median"], ks), notes])
    inter = [(name, e["extra"]["interleaved"]) for name, entries in groups.items() for e in entries
             if isinstance(e["extra"].get("interleaved"), dict)]
    if inter:
        cols = list(dict.fromkeys(col for _, med in inter for col in med))
        ours = "kanswap KANLinear"
        rows = [[name, *(fmt_time(med.get(col)) for col in cols),
                 *(fmt_ratio(med.get(col), med.get(ours)) for col in cols if col != ours)] for name, med in inter]
        lines += ["## Interleaved (medians of calls made in turn; X / kanswap above 1 means kanswap is faster)", ""]
        lines += table(["group", *cols, *(f"{col} / kanswap" for col in cols if col != ours)], rows) + [""]

    lines += ["## All entries", ""]
    lines += table(["group", "implementation", "variant", "median", "min", "rounds×iter", "/ kanswap", "notes"],
                   rows)
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Markdown tables from bench/ pytest-benchmark JSON files.")
    parser.add_argument("json", nargs="+", help="files written with --benchmark-json")
    parser.add_argument("--out", help="also write the markdown here")
    args = parser.parse_args(argv)
    text = report(args.json)
    sys.stdout.write(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
