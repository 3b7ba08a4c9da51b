from tests.mistakes import Mistake

MISTAKES = [
    # -- loading ---------------------------------------------------------------------------
    Mistake("stage7", "decodes with errors='replace', so a file that is not UTF-8 never complains",
            'raw.decode("utf-8-sig")', 'raw.decode("utf-8-sig", errors="replace")', count=2,
            caught_by="test_rejects_a_file_that_is_not_utf8"),
    Mistake("stage7", "counts the lines of a bad byte from 0",
            'line = raw[: error.start].count(b"\\n") + 1', 'line = raw[: error.start].count(b"\\n")', count=2,
            caught_by="test_rejects_a_file_that_is_not_utf8"),
    Mistake("stage7", "decodes as plain utf-8, so Excel's byte-order mark sticks to the first column's name",
            'raw.decode("utf-8-sig")', 'raw.decode("utf-8")', count=2,
            caught_by="test_loads_a_csv_saved_by_a_spreadsheet"),
    Mistake("stage7", "treats the extension case-sensitively (.CSV is unknown)",
            "FILE_TYPES.get(path.suffix.lower())", "FILE_TYPES.get(path.suffix)", count=2,
            caught_by="test_loads_a_csv_saved_by_a_spreadsheet"),
    Mistake("stage7", "numbers the lines of a JSON Lines file from 0",
            "for number, line in enumerate(text.splitlines(), start=1):",
            "for number, line in enumerate(text.splitlines()):", count=2,
            caught_by="test_names_the_broken_jsonl_line"),
    Mistake("stage7", "never checks for an empty file",
            '    if not text.strip():\n        raise DatasetError(path, "the file is empty", '
            'hint="did it save? Open it and look.")\n', "",
            caught_by="test_rejects_a_file_without_rows[empty]"),
    Mistake("stage7", "ignores required_columns",
            "missing = [column for column in required_columns if column not in row]", "missing = []",
            caught_by="test_checks_the_required_columns"),
    # -- cleaning --------------------------------------------------------------------------
    Mistake("stage7", "leaves mojibake unrepaired", "    text = fix_mojibake(text)\n", "",
            caught_by="test_clean_repairs_mojibake"),
    Mistake("stage7", "runs the mojibake round trip the wrong way (encode UTF-8, decode cp1252)",
            'return text.encode(codec).decode("utf-8")', 'return text.encode("utf-8").decode(codec)', count=2,
            caught_by="test_fix_mojibake"),
    Mistake("stage7", "leaves HTML entities such as &amp; in the text", "html.unescape(text)", "text",
            caught_by="test_clean_unescapes_html_entities"),
    Mistake("stage7", "only strips whitespace at the ends", '" ".join(text.split())', "text.strip()",
            caught_by="test_clean_normalises_whitespace"),
    Mistake("stage7", "keeps too-short rows: measures the whole row, not each field",
            "elif any(len(value) < min_chars for value in values):",
            "elif sum(len(value) for value in values) < min_chars:",
            caught_by="test_clean_drops_too_short_rows"),
    Mistake("stage7", "keeps exact duplicates", '        elif values in first_seen:\n            reason = "duplicate"\n',
            "", caught_by="test_clean_removes_exact_duplicates"),
    Mistake("stage7", "compares rows for duplicates before repairing them",
            '        elif values in first_seen:\n            reason = "duplicate"\n        else:\n'
            "            first_seen[values] = index\n",
            "        elif tuple(row.get(field) for field in text_fields) in first_seen:\n"
            '            reason = "duplicate"\n        else:\n'
            "            first_seen[tuple(row.get(field) for field in text_fields)] = index\n",
            caught_by="test_clean_removes_duplicates_after_repair"),
    Mistake("stage7", "repairs the caller's rows in place", "        repaired = dict(row)\n",
            "        repaired = row\n", caught_by="test_clean_the_example_data"),
    # -- formatting, splits, prompts ---------------------------------------------------------
    Mistake("stage7", "accepts a template without [END]",
            "    if not template.rstrip().endswith(END_MARKER):\n"
            '        raise TemplateError(f"the template must end with {END_MARKER}, or the model never learns where an "\n'
            '                            f"example stops: {template!r}")\n', "",
            caught_by="test_format_example_requires_the_end_marker"),
    Mistake("stage7", "lets a bare KeyError out for a field the row lacks",
            "    for field in template_fields(template):\n        if field not in row:\n",
            "    for field in []:\n        if field not in row:\n",
            caught_by="test_format_example_names_a_missing_field"),
    Mistake("stage7", "ends the prompt with a space", "[: -len(END_MARKER)].rstrip()", "[: -len(END_MARKER)]",
            caught_by="test_prompt_for_stops_before_the_last_field"),
    Mistake("stage7", "trains on every row, validation rows included (a leak)",
            "    train_rows, validation_rows = split_rows(rows, test_size=test_size, seed=seed)\n",
            "    _, validation_rows = split_rows(rows, test_size=test_size, seed=seed)\n    train_rows = rows\n",
            caught_by="test_prepare_own_splits"),
]
