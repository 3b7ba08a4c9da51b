"""The library notices the lab silences are exactly those, never a whole category."""
import logging
import warnings

from lessons.engine.quiet import MEAN_RESIZING_NOTE, WARNINGS, quiet_library_notices


def _warn_from(module: str, message: str, category: type[Warning]) -> list:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_library_notices()
        warnings.warn_explicit(message, category, filename=module.replace(".", "/") + ".py", lineno=1, module=module)
    return caught


def test_the_known_notices_are_silenced_and_others_still_show():
    for message, category, module in WARNINGS:
        module = module.replace("\\.", ".")
        text = message.replace("\\", "") + " (the rest of the library's sentence)"
        assert _warn_from(module, text, category) == [], message
        assert len(_warn_from(module, "`something_else` is deprecated", category)) == 1, "another message shows"
        other = DeprecationWarning if category is not DeprecationWarning else UserWarning
        assert len(_warn_from(module, text, other)) == 1, "the same words in another category show"
        assert len(_warn_from("lessons.stage4b_lora", text, category)) == 1, "from the learner's own file it shows"


def test_the_mean_resizing_note_is_dropped_and_other_log_lines_are_kept(caplog):
    quiet_library_notices()
    quiet_library_notices()  # twice: one filter, not two
    logger = logging.getLogger("transformers.modeling_utils")
    assert len(logger.filters) == len(set(logger.filters))
    with caplog.at_level(logging.WARNING, logger="transformers.modeling_utils"):
        logger.warning(MEAN_RESIZING_NOTE + " that has old embeddings' mean and covariance.")
        logger.warning("Some other notice")
    assert [record.getMessage() for record in caplog.records] == ["Some other notice"]
