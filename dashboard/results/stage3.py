"""Stage 3 results: what configure_tokenizer changed, the token-length histogram with the cut, one padded row.

Runs the learner's ``configure_tokenizer``, ``token_length_stats`` and
``tokenize_function`` on a *copy* of the cached tokenizer (configure_tokenizer
changes what it is given) and on a tiny model with the same vocabulary, so the
page never copies the 135-million-parameter model just to add one embedding row.
"""
from __future__ import annotations

import copy
from types import ModuleType

import streamlit as st

from dashboard.logic import stage_data
from dashboard.logic.charts import histogram, token_chips_html
from dashboard.ui import LOAD_LIMIT_S, base_tokenizer, friendly, module_fingerprint, recipe_texts, run_learner_code
from lessons.engine.store import Store


@st.cache_resource(show_spinner="Configuring a copy of the tokenizer with your configure_tokenizer …", max_entries=2)
def _configured(fingerprint: str, _module: ModuleType):
    """(tokenizer, report): a configured copy; shared by this page, never changed after."""
    from lessons.engine.tiny import tiny_llama

    tokenizer = copy.deepcopy(base_tokenizer())
    model = tiny_llama(tokenizer)  # same vocabulary and architecture, 2 layers: resizing it costs nothing
    report = run_learner_code(_module.configure_tokenizer, tokenizer, model,
                              doing="configuring the tokenizer with configure_tokenizer")
    return tokenizer, report


@st.cache_data(show_spinner="Measuring token lengths with your token_length_stats …", max_entries=8)
def _stats(fingerprint: str, max_length: int, texts: tuple[str, ...], _module: ModuleType, _tokenizer) -> dict:
    return run_learner_code(_module.token_length_stats, list(texts), _tokenizer, max_length, timeout_s=LOAD_LIMIT_S,
                            doing="measuring with token_length_stats")


def draw(module: ModuleType, store: Store) -> None:
    fingerprint = module_fingerprint(module)
    tokenizer = report = None
    with friendly("configuring the tokenizer with configure_tokenizer"):
        tokenizer, report = _configured(fingerprint, module)
    if tokenizer is None:
        return
    st.markdown("#### The tokenizer, configured")
    if isinstance(report, dict):
        columns = st.columns(4)
        columns[0].metric("Pad token", str(report.get("pad_token")), help=f"id {report.get('pad_token_id')}")
        columns[1].metric("[END] token id", str(report.get("end_token_id")))
        columns[2].metric("Vocabulary", f"{report.get('vocab_after', len(tokenizer)):,}",
                          delta=(report.get("vocab_after", 0) or 0) - (report.get("vocab_before", 0) or 0) or None)
        columns[3].metric("Embedding rows", f"{report.get('embedding_rows', 0):,}")
        with st.expander("The whole report"):
            st.json(report)

    recipes = recipe_texts()
    texts = tuple(row["text"] for row in recipes)
    st.markdown(f"#### How long are the recipes? ({len(texts):,} formatted recipes)")
    max_length = st.select_slider("max_length (tokens kept per recipe)", [64, 128, 192, 256, 384, 512, 768, 1024],
                                  value=256, key="stage3_max_length")
    with friendly("measuring with token_length_stats"):
        stats = _stats(fingerprint, max_length, texts, module, tokenizer)
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
    shortest = min(recipes, key=lambda row: len(row["text"])) if recipes else {"text": "RECIPE: Toast\n[END]"}
    row_length = st.slider("max_length for this example", 16, 256, 96, key="stage3_example_length")
    with friendly("tokenizing with tokenize_function"):
        out = run_learner_code(module.tokenize_function, {"text": [shortest["text"]]}, tokenizer, row_length,
                               doing="tokenizing with tokenize_function")
        ids, mask = list(out["input_ids"][0]), list(out["attention_mask"][0])
        st.caption(f"{sum(mask)} real tokens, {len(mask) - sum(mask)} padding (attention mask 0, dimmed). "
                   f"Every row is exactly {len(ids)} long.")
        tokens = [{"id": token_id, "text": tokenizer.decode([token_id]) if m else "[PAD]"}
                  for token_id, m in zip(ids, mask)]
        st.html(token_chips_html(tokens).replace("[PAD]", '<span style="opacity:.35">PAD</span>'))
