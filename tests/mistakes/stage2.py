from tests.mistakes import Mistake

MISTAKES = [
    Mistake("stage2", "a formatter that forgets the [END] line",
            "RECIPE_TEMPLATE.format(title=", 'RECIPE_TEMPLATE.removesuffix("\\n" + END_MARKER).format(title=',
            caught_by="test_format_recipe_ends_with_end_marker"),
    Mistake("stage2", "prints the Python list (str(list)) instead of joining the ingredients",
            "ingredients=INGREDIENT_SEPARATOR.join(ingredients),", "ingredients=str(ingredients),",
            caught_by="test_format_recipe_reads_like_a_recipe"),
    Mistake("stage2", "loops over string-typed ingredients, one character at a time",
            'ingredients = as_list(example.get("ingredients"), drop_headers=True)\n'
            '    directions = as_list(example.get("directions"))\n',
            'ingredients = [clean_text(item) for item in example.get("ingredients")]\n'
            '    directions = as_list(example.get("directions"))\n',
            caught_by="test_format_recipe_recipenlg_strings"),
    Mistake("stage2", "the ingredient threshold is off by one (> instead of >=)",
            "len(ingredients) >= MIN_INGREDIENTS", "len(ingredients) > MIN_INGREDIENTS",
            caught_by="test_is_valid_recipe_rules"),
    Mistake("stage2", "a split that leaks validation recipes into training",
            'DatasetDict({"train": split["train"], "validation": split["test"]})',
            'DatasetDict({"train": Dataset.from_list(rows), "validation": split["test"]})',
            caught_by="test_prepare_splits_no_leak"),
    Mistake("stage2", "keeps duplicate titles, so one recipe can sit in both splits",
            "        if key not in seen_titles:\n            seen_titles.add(key)\n            unique.append(recipe)\n",
            "        unique.append(recipe)\n",
            caught_by="test_prepare_splits_filters_and_drops_duplicates"),
    Mistake("stage2", "takes the first n recipes (all starting with A) instead of a random subset",
            "    random.Random(seed).shuffle(unique)\n", "",
            caught_by="test_prepare_splits_is_random_but_repeatable"),
    Mistake("stage2", "counts the characters of a JSON string as ingredients",
            "    if isinstance(value, str):\n        text = value.strip()\n",
            "    if False:\n        text = value.strip()\n",
            caught_by="test_as_list_takes_every_shape"),
]
MISTAKES += [
    Mistake("stage2", "drops duplicates by the raw title, so 'Mac &amp; Cheese' and 'mac & cheese' both stay",
            '        key = title_key(recipe.get("title"))\n        if key not in seen_titles:',
            '        key = recipe.get("title")\n        if key not in seen_titles:',
            caught_by="test_prepare_splits_filters_and_drops_duplicates"),
    Mistake("stage2", "drops duplicates by the cleaned title but forgets case ('Mac & Cheese' and 'mac & cheese')",
            '        key = title_key(recipe.get("title"))\n        if key not in seen_titles:',
            '        key = clean_text(recipe.get("title"))\n        if key not in seen_titles:',
            caught_by="test_prepare_splits_filters_and_drops_duplicates"),
    Mistake("stage2", "format_recipe returns the text itself, not {'text': ...}: prepare_splits names format_recipe",
            '    return {"text": text}\n    ### END SOLUTION', '    return text\n    ### END SOLUTION',
            caught_by="test_prepare_splits_shape"),
    Mistake("stage2", "recipe_checks counts the raw ingredients field: data_mess_report names recipe_checks",
            '    ingredients = as_list(example.get("ingredients"), drop_headers=True)\n'
            '    directions = DIRECTION_SEPARATOR.join(as_list(example.get("directions")))\n',
            '    ingredients = example.get("ingredients") or []\n'
            '    directions = DIRECTION_SEPARATOR.join(as_list(example.get("directions")))\n',
            caught_by="test_data_mess_report"),
]
