"""A prompt's metadata header: every way it can be malformed is reported as a problem with the
line to fix (collected, never raised, so `prompts validate` lists them all), and declared
variable types are what `accepts` checks callers against."""

from pathlib import Path

import pytest

from agent_platform.prompts import parse_prompt_source
from agent_platform.prompts.spec import MAX_TEMPLATE_CHARS

PATH = Path("prompts/greeting.jinja")


def header(body: str) -> str:
    return f"{{#- ---\n{body}--- -#}}\nHello.\n"


@pytest.mark.parametrize(
    ("source", "line", "message"),
    [
        ("x" * (MAX_TEMPLATE_CHARS + 1), 1, f"the limit is {MAX_TEMPLATE_CHARS}"),
        ("Hello {{ name }}\n", 1, "missing metadata header"),
        (header("name: greeting\nvariables: [unclosed\n"), 4, "not valid YAML"),
        (header("- just\n- a list\n"), 2, "must be a YAML mapping"),
        (header("name: Greeting!\n"), 2, "'Greeting!' is not a prompt name"),
        (
            header("name: greeting\nreview:\n  required_approvals: [Legal Team]\n"),
            4,
            "approver role 'Legal Team' must be lower-case",
        ),
        (header("name: farewell\n"), 2, "header name 'farewell' does not match the file name"),
    ],
    ids=["too long", "no header", "bad yaml", "not a mapping", "bad name", "bad role", "renamed"],
)
def test_a_malformed_header_is_one_problem_naming_its_line(
    source: str, line: int, message: str
) -> None:
    parsed = parse_prompt_source(source, PATH)
    assert len(parsed.problems) == 1, parsed.problems
    (found,) = parsed.problems
    assert found.line == line and message in found.message, found
    assert str(found.path) == str(PATH)


def test_declared_types_are_what_variables_accept() -> None:
    parsed = parse_prompt_source(
        header(
            "name: greeting\nvariables:\n"
            "  count: {type: int}\n"
            "  note: {type: str, required: false}\n"
            "  extra: {type: any}\n"
        ),
        PATH,
    )
    assert parsed.problems == () and parsed.spec is not None
    variables = parsed.spec.variables
    assert variables["count"].accepts(3) and not variables["count"].accepts("3")
    assert not variables["count"].accepts(True)  # a bool is not a count
    assert not variables["count"].accepts(None)  # required
    assert variables["note"].accepts(None) and variables["note"].accepts("hi")
    assert variables["extra"].accepts(object())
