"""The dashboard's Altair charts, built from plain rows so tests can read their spec.

Each function takes lists of dicts (what the store and the lesson functions
return) and gives back an ``alt.Chart``; the pages only call ``st.altair_chart``.
"""
from __future__ import annotations

import hashlib
import math
import re
from typing import Any, Iterable

import altair as alt
import pandas as pd

SPLIT_COLORS = alt.Scale(domain=["train", "validation"], range=["#1f77b4", "#ff7f0e"])
STEP_AXIS = alt.Axis(format="d", tickMinStep=1)  # optimizer steps are whole numbers: no tick at step 2.5


def visible(text: str) -> str:
    """A token's text with its invisible parts shown: a space as ·, a newline as ↵, a tab as →."""
    return text.replace(" ", "·").replace("\n", "↵").replace("\t", "→") or "∅"


def _byte_level_alphabet() -> dict[str, int]:
    """GPT-2's byte-level BPE alphabet (SmolLM2 uses it too): the character that stands for each byte."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    codes, extra = list(printable), 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return {chr(code): byte for byte, code in zip(printable, codes)}


BYTE_OF = _byte_level_alphabet()


def readable_token(text: str, token: str = "") -> str:
    """A token as a person can read it: ``visible(text)``, and a piece of a character as its bytes.

    A byte-level BPE token can hold part of a character's UTF-8 bytes ("½" is two tokens, C2 and BD): decoded
    alone it is "�", and its raw string ("Â") is mojibake. Either way it is shown as ``⟨C2⟩``. A raw
    token string given as the text (``ĠPanc``) is read through the byte alphabet too: "·Panc".
    """
    if "\ufffd" in text and token and all(char in BYTE_OF for char in token):
        raw = token  # the decoded text lost the bytes: read them from the token string
    elif ("Ġ" in text or "Ċ" in text) and all(char in BYTE_OF for char in text):
        raw = text   # the raw token string was given as the text
    else:
        raw = ""
    if raw:
        shown = bytes(BYTE_OF[char] for char in raw).decode("utf-8", errors="backslashreplace")
        return visible(re.sub(r"\\x([0-9a-f]{2})", lambda match: f"⟨{match.group(1).upper()}⟩", shown))
    return visible(text.replace("\ufffd", "⟨?⟩"))


def token_colour(token_id: int) -> str:
    """A soft colour fixed per token id, so the same token is the same colour everywhere."""
    hue = int(hashlib.md5(str(token_id).encode()).hexdigest()[:4], 16) % 360
    return f"hsl({hue}, 70%, 82%)"


def token_frame(tokens: list[dict], *, per_row: int = 8) -> pd.DataFrame:
    rows = []
    for position, token in enumerate(tokens):
        shown = readable_token(str(token.get("text", token.get("token", ""))), str(token.get("token", "")))
        rows.append({"position": position, "row": position // per_row, "column": position % per_row,
                     "text": shown, "token": str(token.get("token", "")), "id": int(token["id"]),
                     "label": f"{shown}\n{int(token['id'])}"})
    return pd.DataFrame(rows, columns=["position", "row", "column", "text", "token", "id", "label"])


def token_chart(tokens: list[dict], *, per_row: int = 8) -> alt.Chart:
    """Tokens as coloured tiles in reading order, each with its text and id (tooltip: the token string)."""
    frame = token_frame(tokens, per_row=per_row)
    frame["colour"] = [token_colour(i) for i in frame["id"]]
    rows = max(1, int(frame["row"].max()) + 1) if len(frame) else 1
    base = alt.Chart(frame).encode(
        x=alt.X("column:O", axis=None), y=alt.Y("row:O", axis=None),
        tooltip=[alt.Tooltip("position:Q"), alt.Tooltip("token:N", title="token string"),
                 alt.Tooltip("text:N", title="text"), alt.Tooltip("id:Q", title="id")])
    tiles = base.mark_rect(stroke="white", strokeWidth=3, cornerRadius=4).encode(
        color=alt.Color("colour:N", scale=None))
    words = base.mark_text(fontSize=13, dy=-8).encode(text="text:N")
    ids = base.mark_text(fontSize=10, dy=10, color="#555").encode(text="id:Q")
    return (tiles + words + ids).properties(height=52 * rows, title="Tokens, in order (colour = token id)")


def token_chips_html(tokens: list[dict]) -> str:
    """The same tokens as inline HTML chips (text above, id below), for reading a long text."""
    import html

    chips = []
    for token in tokens:
        text = html.escape(readable_token(str(token.get("text", token.get("token", ""))), str(token.get("token", ""))))
        chips.append(f'<span style="display:inline-block;margin:2px;padding:2px 6px;border-radius:6px;'
                     f'background:{token_colour(int(token["id"]))};font-family:monospace;text-align:center">'
                     f'{text}<br><small style="color:#555">{int(token["id"])}</small></span>')
    return f'<div class="lk-token-chips">{"".join(chips)}</div>'


def loss_chart(metrics: Iterable[dict], *, title: str = "Training and validation loss") -> alt.Chart:
    """Loss by step, one line per split (train, validation); validation as points too (it is sparse)."""
    frame = pd.DataFrame([{"step": m["step"], "split": "validation" if m["split"] in ("eval", "validation")
                           else m["split"], "loss": m["loss"]}
                          for m in metrics if m.get("loss") is not None], columns=["step", "split", "loss"])
    line = alt.Chart(frame).mark_line(point=alt.OverlayMarkDef(size=25)).encode(
        x=alt.X("step:Q", title="optimizer step", axis=STEP_AXIS),
        y=alt.Y("loss:Q", title="loss", scale=alt.Scale(zero=False)),
        color=alt.Color("split:N", scale=SPLIT_COLORS, title=None),
        tooltip=["step:Q", "split:N", alt.Tooltip("loss:Q", format=".3f")])
    return line.properties(height=300, title=title)


def runs_loss_chart(rows: list[dict], *, colour: str = "run", title: str = "Loss curves",
                    points: bool = False) -> alt.Chart:
    """Several runs' loss curves on one chart: rows with step, loss, split and a ``colour`` field.

    ``points`` marks every logged loss too (a validation loss logged once is a point, not a line); default off.
    """
    frame = pd.DataFrame(rows, columns=sorted({"step", "loss", "split", colour} | set(rows[0] if rows else ())))
    mark = alt.Chart(frame).mark_line(point=alt.OverlayMarkDef(size=25)) if points else alt.Chart(frame).mark_line()
    return mark.encode(
        x=alt.X("step:Q", title="optimizer step", axis=STEP_AXIS), y=alt.Y("loss:Q", scale=alt.Scale(zero=False)),
        color=alt.Color(f"{colour}:N"), strokeDash=alt.StrokeDash("split:N"),
        tooltip=[f"{colour}:N", "split:N", "step:Q", alt.Tooltip("loss:Q", format=".3f")],
    ).properties(height=320, title=title)


def nice_ticks(largest: float, *, ticks: int = 5) -> list[float]:
    """Round tick values from 0 to at least ``largest``, about ``ticks`` steps of 1, 2, 2.5 or 5 × 10^n.

    The scale ends on the last one, so the tallest bar never rises past the top tick.
    """
    if not largest > 0 or not math.isfinite(largest):
        return [0.0, 1.0]
    magnitude = 10 ** math.floor(math.log10(largest / ticks))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= largest / ticks)
    count = math.ceil(largest / step - 1e-9)
    return [round(i * step, 10) for i in range(count + 1)]


def bar_chart(rows: list[dict], *, x: str, y: str, colour: str | None = None, title: str = "",
              horizontal: bool = False, sort: Any = None, height: int | None = None,
              grouped: bool = False) -> alt.Chart:
    """A plain bar chart of ``rows`` (categories on ``x``, values on ``y``); ``grouped`` puts colours side by side."""
    frame = pd.DataFrame(rows)
    long_labels = x in frame and len(frame) and frame[x].astype(str).str.len().max() > 4
    if horizontal:
        category = alt.Y(f"{x}:N", sort=sort, title=x, axis=alt.Axis(labelLimit=320))
    else:
        category = alt.X(f"{x}:N", sort=sort, title=x,
                         axis=alt.Axis(labelAngle=-40 if long_labels else 0, labelLimit=200))
    values = pd.to_numeric(frame[y], errors="coerce") if y in frame else pd.Series(dtype=float)
    stacked = bool(colour) and not grouped and colour in frame and x in frame
    tallest = (values.groupby(frame[x].astype(str)).sum() if stacked else values).max() if len(values) else 0
    if len(values) and values.min() >= 0 and tallest > 0:
        ticks = nice_ticks(float(tallest))
        scale, axis = alt.Scale(domain=[0, ticks[-1]], nice=False), alt.Axis(values=ticks)
    else:
        scale, axis = alt.Undefined, alt.Undefined
    value = (alt.Y if not horizontal else alt.X)(f"{y}:Q", title=y, scale=scale, axis=axis)
    encoding: dict[str, Any] = {"x": category, "y": value} if not horizontal else {"y": category, "x": value}
    if colour:
        encoding["color"] = alt.Color(f"{colour}:N")
        if grouped:
            encoding["yOffset" if horizontal else "xOffset"] = alt.XOffset(f"{colour}:N") if not horizontal \
                else alt.YOffset(f"{colour}:N")
    chart = alt.Chart(frame).mark_bar().encode(**encoding, tooltip=list(frame.columns))
    props: dict[str, Any] = {"title": title}
    if height:
        props["height"] = height
    return chart.properties(**props)


CHECK_COLOURS = alt.Scale(domain=["passed", "not passed yet"], range=["#2e9e44", "#d9d9d9"])


def checks_chart(rows: list[dict], *, order: list[str]) -> alt.Chart:
    """Checks per stage, passed (green) stacked on not passed yet (grey): rows of stage, checks, outcome."""
    frame = pd.DataFrame(rows, columns=["stage", "checks", "outcome"])
    return alt.Chart(frame).mark_bar().encode(
        x=alt.X("stage:N", sort=order, axis=alt.Axis(labelAngle=0)),
        y=alt.Y("checks:Q", title="checks", axis=alt.Axis(tickMinStep=1)),
        color=alt.Color("outcome:N", scale=CHECK_COLOURS, title=None),
        order=alt.Order("outcome:N", sort="descending"),
        tooltip=["stage:N", "outcome:N", "checks:Q"],
    ).properties(height=200, title="Checks per stage")


def histogram(values: list[int], *, limit: int | None = None, title: str = "", x_title: str = "tokens") -> alt.Chart:
    """A histogram of lengths, with a red rule at ``limit`` (the truncation length) when given."""
    frame = pd.DataFrame({"value": values})
    bars = alt.Chart(frame).mark_bar().encode(
        x=alt.X("value:Q", bin=alt.Bin(maxbins=40), title=x_title), y=alt.Y("count():Q", title="recipes"))
    chart = bars
    if limit:
        rule = alt.Chart(pd.DataFrame({"limit": [limit]})).mark_rule(color="red", strokeWidth=2).encode(
            x="limit:Q", tooltip=[alt.Tooltip("limit:Q", title="max_length")])
        chart = bars + rule
    return chart.properties(height=260, title=title)


def temperature_chart(rows: list[dict], *, title: str, subtitle: str = "", height: int = 340) -> alt.Chart:
    """A few tokens' probabilities (``token``, ``probability``) as upright bars on a fixed 0–100 % scale.

    ``height`` is the whole chart's, title and axes included (Streamlit fits the chart into it): 340 px
    leaves a plot area of about 230 px.

    The scale stays put as the temperature slider moves, so the bars' heights can be compared from one
    setting to the next; each bar carries its value, and the labels stay level (there are only a few).
    """
    frame = pd.DataFrame(rows, columns=["token", "probability"])
    base = alt.Chart(frame).encode(
        x=alt.X("token:N", sort=None, title=None, axis=alt.Axis(labelAngle=0, labelFontSize=13, labelLimit=240)),
        y=alt.Y("probability:Q", title="probability", scale=alt.Scale(domain=[0, 1]),
                axis=alt.Axis(format=".0%", labelFontSize=12, titleFontSize=13)),
        tooltip=["token:N", alt.Tooltip("probability:Q", format=".1%")])
    bars = base.mark_bar(size=60)
    values = base.mark_text(dy=-8, fontSize=13).encode(text=alt.Text("probability:Q", format=".1%"))
    return (bars + values).properties(height=height, title=alt.TitleParams(title, subtitle=subtitle or alt.Undefined,
                                                                          anchor="start", fontSize=15))


NEXT_TOKEN_BARS = 8  # tokens per model on the next-token chart: the rest hold little probability and much room
NEXT_TOKEN_COLOURS = alt.Scale(domain=["the model's own", "after temperature and top-p"],
                               range=["#9ecae1", "#08519c"])


def next_token_chart(rows: list[dict], *, title: str, top: int = NEXT_TOKEN_BARS) -> alt.Chart:
    """One model's most probable next tokens (``token``, ``probability``, ``as``): two bars each, before and after.

    ``top`` tokens at most, in the rows' order (most probable first); the legend sits above the plot with
    its labels whole, and the height (the whole chart's, as Streamlit fits it) gives each token 40 px.
    """
    tokens = list(dict.fromkeys(row["token"] for row in rows))[:top]
    frame = pd.DataFrame([row for row in rows if row["token"] in tokens], columns=["token", "probability", "as"])
    return alt.Chart(frame).mark_bar().encode(
        x=alt.X("probability:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format=".0%", tickCount=5)),
        y=alt.Y("token:N", sort=tokens, title=None, axis=alt.Axis(labelLimit=200, labelFontSize=13)),
        yOffset=alt.YOffset("as:N", sort=NEXT_TOKEN_COLOURS.domain),
        color=alt.Color("as:N", scale=NEXT_TOKEN_COLOURS, title=None,
                        legend=alt.Legend(orient="top", labelLimit=0, direction="horizontal")),
        tooltip=["token:N", "as:N", alt.Tooltip("probability:Q", format=".1%")],
    ).properties(height=110 + 40 * max(1, len(tokens)), title=title)  # the whole chart's: title, legend, axis
