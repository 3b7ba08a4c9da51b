"""The bench's report: the side-by-side table, and the lines printed before it."""
from __future__ import annotations

from ..engine.flops import PEAK_ENV


COLUMNS = (("tokens_per_s", "useful tok/s", "{:.0f}"), ("wall_seconds", "wall s", "{:.0f}"),
           ("step_seconds", "train s", "{:.0f}"), ("added_mb", "peak +MB", "{:.0f}"),
           ("perplexity", "held-out ppl", "{:.2f}"), ("stop_rate", "stop at [END]", "{:.0%}"))


def format_table(arms: dict[str, dict]) -> str:
    """The side-by-side table: one row per arm, then ``lab/baseline`` (each column's ratio) as the last line.

    "peak +MB" is the peak memory while training above the memory in use just before it (RSS on a CPU,
    allocated bytes on a GPU): both arms run in one process, so the raw peak would also count what the
    first arm left behind."""
    header = f"{'':14}" + "".join(f"{title:>15}" for _, title, _ in COLUMNS)
    lines = [header]
    for name in ("baseline", "lab"):
        row = arms[name]
        cells = []
        for key, _, fmt in COLUMNS:
            value = row.get(key)
            cells.append(f"{fmt.format(value) if value is not None else '-':>15}")
        lines.append(f"{name:14}" + "".join(cells))
    ratios = []
    for key, _, _ in COLUMNS:
        base, lab = arms["baseline"].get(key), arms["lab"].get(key)
        if base and lab is not None:
            ratios.append(f"{lab / base:>14.2f}x")
        else:
            ratios.append(f"{('n/a' if base == 0 else '-'):>15}")  # n/a: the baseline's value is 0
    lines.append(f"{'lab/baseline':14}" + "".join(ratios))
    return "\n".join(lines)


def arithmetic_line(arms: dict[str, dict], peak: float | None, device: str) -> str:
    """Model FLOPs per second of both arms' training steps and, where the device's peak is known, its share."""
    def rate(arm: dict) -> str:
        value = arm.get("flops_per_s")
        if value is None:
            return "-"
        share = f" ({value / peak:.1%} of the peak)" if peak else ""
        return f"{value / 1e9:,.0f} GFLOP/s{share}"

    known = (f"peak bf16 {peak / 1e12:,.1f} TFLOP/s" if peak else
             f"no peak known for {device} (set {PEAK_ENV} in TFLOP/s to compare)")
    return (f"model arithmetic of the training steps (real tokens only; lessons/engine/flops.py): "
            f"baseline {rate(arms['baseline'])}, lab {rate(arms['lab'])}; {known}")


def rate(result: dict) -> str:
    return f"{result['tokens_per_s']:.1f}" if result.get("tokens_per_s") else "-"


def generation_row(result: dict) -> dict:
    return {key: result[key] for key in ("seconds", "tokens", "tokens_per_s", "stop_rate")}
