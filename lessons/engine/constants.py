"""Constants shared by the stages, so stage 2's format and stage 3's tokenizer agree."""

END_MARKER = "[END]"                 # the line that closes every formatted recipe
RECIPE_TEMPLATE = "RECIPE: {title}\nINGREDIENTS: {ingredients}\nDIRECTIONS: {directions}\n" + END_MARKER
PROMPT_TEMPLATE = "RECIPE: {title}\nINGREDIENTS:"  # how a generation prompt starts a recipe
IGNORE_INDEX = -100                 # the label cross-entropy skips: padding, a packed recipe's first token
