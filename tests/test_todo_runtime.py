"""What a learner sees when they run an unfinished function: one line naming the file and line."""
from __future__ import annotations

import pytest

from lessons.engine.todo import NotImplementedYet, ___, todo


def unfinished():
    raise todo()


def uses_blank(x):
    return ___.from_pretrained(x)


def blank_in_arithmetic(x):
    return x / ___


def test_todo_names_this_file_line_and_function():
    with pytest.raises(NotImplementedYet) as caught:
        unfinished()
    error = caught.value
    assert (error.filename, error.function) == ("tests/test_todo_runtime.py", "unfinished")
    assert str(error) == f"not implemented yet — open tests/test_todo_runtime.py:{error.line} (unfinished)"
    assert error.line == unfinished.__code__.co_firstlineno + 1


@pytest.mark.parametrize("function", [uses_blank, blank_in_arithmetic])
def test_any_use_of_a_blank_raises_the_same_kind_of_error(function):
    with pytest.raises(NotImplementedYet, match=r"blank ___ not filled in yet — open tests/test_todo_runtime.py:\d+"):
        function(2)


def test_blank_is_falsy_never():
    with pytest.raises(NotImplementedYet):
        bool(___)
