"""The benchmark's result (``python -m lessons bench``) as chart rows and Altair charts, for the stage 4B page.

No Streamlit here: the page draws what ``bench_charts`` returns.
"""
from __future__ import annotations

ARM_NAMES = {"baseline": "original assignment", "lab": "LoRA Kitchen"}
ARM_COLOURS = ["#9e9e9e", "#2e7d32"]  # grey for the original assignment, the lab's green for LoRA Kitchen


def bench_rows(result: dict) -> dict:
    """The benchmark's numbers as chart rows: per arm (padding, tokens/s, time per epoch, stops), the speed ladder,
    and the stop rate's budget of new tokens (None in results saved without it)."""
    arms, settings = result.get("arms") or {}, result.get("settings") or {}
    epochs = max(1, int(settings.get("epochs") or 1))  # results saved without epochs: one pass
    per_arm = []
    for key in ("baseline", "lab"):
        arm = arms.get(key) or {}
        per_arm.append({"arm": ARM_NAMES[key], "padding_share": float(arm.get("padding_share") or 0.0),
                        "tokens_per_s": float(arm.get("tokens_per_s") or 0.0),
                        "epoch_seconds": float(arm.get("step_seconds") or 0.0) / epochs,
                        "stop_rate": float(arm.get("stop_rate") or 0.0),
                        "perplexity": arm.get("perplexity")})
    ladder = [{"rung": f"{i + 1}. {rung['rung']}", "tokens_per_s": float(rung.get("tokens_per_s") or 0.0)}
              for i, rung in enumerate(result.get("ladder") or [])]
    return {"arms": per_arm, "ladder": ladder, "budget": settings.get("max_new_tokens")}


def bench_charts(result: dict) -> list:
    """Altair charts of a ``python -m lessons bench`` result: what padding costs, and what each piece gains."""
    import altair as alt
    import pandas as pd

    rows = bench_rows(result)
    arms = pd.DataFrame(rows["arms"])
    order = [ARM_NAMES["baseline"], ARM_NAMES["lab"]]
    colour = alt.Color("arm:N", legend=None, scale=alt.Scale(domain=order, range=ARM_COLOURS))

    def bars(field: str, title: str, fmt: str) -> alt.Chart:
        return alt.Chart(arms).mark_bar().encode(
            y=alt.Y("arm:N", title=None, sort=order),
            x=alt.X(f"{field}:Q", title=title, axis=alt.Axis(format=fmt)), color=colour,
            tooltip=["arm:N", alt.Tooltip(f"{field}:Q", title=title, format=fmt)]).properties(
            # a height per bar: a fixed 90 px for the whole chart draws each bar as a 1-px line in Streamlit 1.67
            height=alt.Step(30), title=title)

    charts = [bars("padding_share", "Share of each batch that is padding", ".0%"),
              bars("tokens_per_s", "Useful tokens per second (higher is better)", ",.0f"),
              bars("epoch_seconds", "Seconds of training per epoch (lower is better)", ",.0f"),
              bars("stop_rate", "Generations that stop at [END]"
                   + (f" within {rows['budget']} new tokens" if rows["budget"] else ""), ".0%")]
    if rows["ladder"]:
        ladder = pd.DataFrame(rows["ladder"])
        charts.append(alt.Chart(ladder).mark_bar(color=ARM_COLOURS[1]).encode(
            y=alt.Y("rung:N", title=None, sort=None, axis=alt.Axis(labelLimit=420)),  # whole rung names
            x=alt.X("tokens_per_s:Q", title="useful tokens per second"),
            tooltip=["rung:N", alt.Tooltip("tokens_per_s:Q", format=",.0f")]).properties(
            title="One piece at a time: training steps on the same recipes"))
    return charts
