"""Stage 1: the lesson, your checks, the results of your code, hints and questions."""
from dashboard.ui import stage_page

stage_page("stage1")
