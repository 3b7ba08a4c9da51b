"""Stage 3 results: what configure_tokenizer changed, the token-length histogram with the cut, one padded row.

Runs the learner's ``configure_tokenizer``, ``token_length_stats`` and
``tokenize_function`` in the worker process (``dashboard/tasks/stage3.py``), on
a *copy* of the base tokenizer (configure_tokenizer changes what it is given)
and a tiny model with the same vocabulary, so the page never copies the
135-million-parameter model just to add one embedding row.
"""
from __future__ import annotations

import streamlit as st

from dashboard.logic import stage_data
from dashboard.logic.charts import histogram, token_chips_html
from dashboard.logic.kernel import LessonRef
from dashboard.tasks import stage3 as tasks
from dashboard.ui import LOAD_LIMIT_S, earlier_ref, friendly, run_task
from lessons.engine.store import Store


def draw(ref: LessonRef, store: Store) -> None:
    configured = None
    with friendly("configuring the tokenizer with configure_tokenizer"):
        with st.spinner("Configuring a copy of the tokenizer with your configure_tokenizer …"):
            configured = run_task(tasks.configure, ref, timeout_s=LOAD_LIMIT_S,
                                  doing="configuring the tokenizer with configure_tokenizer")
    if configured is None:
        return
    report = configured["report"]
    st.markdown("#### The tokenizer, configured")
    if isinstance(report, dict):
        columns = st.columns(4)
        columns[0].metric("Pad token", str(report.get("pad_token")), help=f"id {report.get('pad_token_id')}")
        columns[1].metric("[END] token id", str(report.get("end_token_id")))
        columns[2].metric("Vocabulary", f"{report.get('vocab_after', configured['vocab']):,}",
                          delta=(report.get("vocab_after", 0) or 0) - (report.get("vocab_before", 0) or 0) or None)
        columns[3].metric("Embedding rows", f"{report.get('embedding_rows', 0):,}")
        with st.expander("The whole report"):
            st.json(report)

    recipes = None
    with friendly("formatting the recipes with stage 2's code"):
        stage2 = earlier_ref("stage2")
        with st.spinner("Formatting the recipes with stage 2 …"):
            recipes = run_task(tasks.recipes, stage2, timeout_s=LOAD_LIMIT_S,
                               doing="formatting the recipes with stage 2's code")
    if recipes is None:
        return
    if recipes["note"]:
        st.caption(recipes["note"])
    st.markdown(f"#### How long are the recipes? ({recipes['count']:,} formatted recipes)")
    max_length = st.select_slider("max_length (tokens kept per recipe)", [64, 128, 192, 256, 384, 512, 768, 1024],
                                  value=256, key="stage3_max_length")
    with friendly("measuring with token_length_stats"):
        with st.spinner("Measuring token lengths with your token_length_stats …"):
            stats = run_task(tasks.length_stats, ref, stage2, max_length, timeout_s=LOAD_LIMIT_S,
                             doing="measuring with token_length_stats")
        columns = st.columns(4)
        columns[0].metric("Median length", f"{stats.get('median', 0):.0f} tokens")
        columns[1].metric(f"Longer than {max_length}", f"{stats.get('share_longer', 0):.0%}",
                          help=f"{stats.get('longer_than_max', 0):,} recipes are cut")
        columns[2].metric("Lose their [END]", f"{stats.get('lost_end_marker', 0):,}")
        columns[3].metric("Padding in a batch", f"{stats.get('padding_share', 0):.0%}")
        st.altair_chart(histogram(list(stats.get("lengths", [])), limit=max_length,
                                  title=f"Tokens per recipe; red line: max_length = {max_length}"), width="stretch")
        summary = {key: value for key, value in stats.items() if key != "lengths"}
        if store.result("stage3", "token_length_stats") != summary:
            store.put_result("stage3", "token_length_stats", summary)
        with st.expander("All the numbers"):
            st.dataframe(stage_data.length_summary_rows(summary), hide_index=True)

    st.markdown("#### One recipe, tokenized")
    row_length = st.slider("max_length for this example", 16, 256, 96, key="stage3_example_length")
    with friendly("tokenizing with tokenize_function"):
        row = run_task(tasks.tokenized_row, ref, recipes["shortest"], row_length,
                       doing="tokenizing with tokenize_function")
        ids, mask, tokens = row["ids"], row["mask"], row["tokens"]
        st.caption(f"{sum(mask)} real tokens, {len(mask) - sum(mask)} padding (attention mask 0, dimmed). "
                   f"Every row is exactly {len(ids)} long.")
        st.html(token_chips_html(tokens).replace("[PAD]", '<span style="opacity:.35">PAD</span>'))
