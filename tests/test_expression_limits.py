"""The memory and time budget of an expression evaluation (issue 11, item 5).

Each hostile expression fails with an ExpressionError naming the limit, and fails
before it allocates: the peak allocation of the whole evaluation, measured with
tracemalloc, stays a few megabytes where the unbounded expression takes gigabytes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from connectors.choices import RunProfileType
from connectors.models import ConnectedSystemObjectType
from exports.models import PendingExport
from metaverse.choices import FlowKind, SyncRuleDirection
from metaverse.expressions import (
    AttributeView,
    ExpressionError,
    ExpressionSyntaxError,
    compile_dn_template,
    compile_expression,
)
from metaverse.models import (
    MetaverseAttribute,
    MetaverseObject,
    MetaverseObjectType,
    SyncRule,
    SyncRuleFlow,
    SyncRuleJoin,
)
from tests.builders import errors, make_csv_system, person, rpeis, run
from tests.sync.scenario import build_scenario

#: What an evaluation stopped by its budget may have allocated at most: the budget
#: (a million characters) and the bookkeeping, far from the gigabytes asked for.
PEAK_BYTES = 32 * 1024 * 1024

TEXT_LIMIT = "JIM_EXPRESSION_MAX_TEXT"
ITEMS_LIMIT = "JIM_EXPRESSION_MAX_ITEMS"
TIME_LIMIT = "JIM_EXPRESSION_TIME_LIMIT_MS"


@pytest.fixture(autouse=True)
def memory_limits_only(settings) -> None:
    """No deadline in reach, so that a memory test fails on its memory limit however
    slow the machine (tracemalloc slows it down); the time tests set their own."""
    settings.JIM_EXPRESSION_TIME_LIMIT_MS = 600_000


def evaluate(source: str, **cs: Any) -> Any:
    view = AttributeView({name: [value] for name, value in cs.items()})
    return compile_expression(source).evaluate(cs=view, mv=AttributeView({}))


def failure_and_peak(run: Callable[[], Any]) -> tuple[str, int]:
    """The ExpressionError's message and the peak allocation while running."""
    tracemalloc.start()
    try:
        with pytest.raises(ExpressionError) as failure:
            run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return str(failure.value), peak


def assert_refused(source: str, limit: str, **cs: Any) -> None:
    message, peak = failure_and_peak(lambda: evaluate(source, **cs))
    assert limit in message, message
    assert peak < PEAK_BYTES, f"{source}: {peak:,} bytes allocated"


# --------------------------------------------------------------------------- the issue's cases


@pytest.mark.parametrize(
    "source",
    [
        "(['x' * 100000] * 10000) | join | length",
        "'x' | center(300000000)",
        "'%0200000000d' % 1",
        "'{:>200000000}'.format('x')",
    ],
)
def test_the_issues_expressions_exceed_the_text_limit(source: str) -> None:
    assert_refused(source, TEXT_LIMIT)


def test_lipsum_is_gone() -> None:
    with pytest.raises(ExpressionError, match="'lipsum' is undefined"):
        evaluate("lipsum(30000)")


# --------------------------------------------------------------------------- text


@pytest.mark.parametrize(
    "source",
    [
        # printf formatting: widths, precisions, '*' widths, the format filter
        "'%*d' % (200000000, 1)",
        "'%.200000000f' % 1.5",
        "'%(a)0200000000d' % {'a': 1}",
        "'%0200000000d' | format(1)",
        "'%s%s' | format('x' * 600000, 'y' * 600000)",
        # str.format: width, precision, nested width, one argument many times, format_map
        "'{:.200000000f}'.format(1.5)",
        "'{:{}}'.format('x', 200000000)",
        "'{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}'.format('x' * 100000)",
        "'{a:>200000000}'.format_map({'a': 'x'})",
        "('{:>200000000}' | safe).format('x')",
        # padding methods and filters
        "'x'.ljust(200000000)",
        "'x'.rjust(200000000)",
        "'x'.center(200000000)",
        "'1'.zfill(200000000)",
        "'\t'.expandtabs(200000000)",
        "'a' | indent(200000000, true)",
        "'a\na' | indent('x' * 600000)",
        "('a ' * 1000) | wordwrap(1, wrapstring='y' * 10000)",
        "(['x' * 10000] * 90) | tojson(200000)",
        # replacement and translation
        "('x' * 1000).replace('x', 'y' * 100000)",
        "('x' * 1000) | replace('x', 'y' * 100000)",
        "('x' * 1000) | replace_chars('x', 'y' * 100000)",
        "('ab' * 1000).translate({97: 'z' * 100000})",
        # joining and concatenating
        "'-'.join(['x' * 100000] * 100)",
        "(['x' * 100000] * 20) | join_values('-')",
        "'x' * 900000 ~ 'x' * 900000",
        "'x' * 900000 + 'x' * 900000",
        "['x' * 600000] + ['y' * 600000]",
        "'x' * 200000000",
        "['x' * 100000] * 20",
        # many small results add up: the budget is the evaluation's, not the value's
        "range(100000) | map('center', 1000) | list | length",
        "range(1000) | map('string') | map('center', 2000) | join | length",
        # dates: strftime pads to any width on glibc
        "now().strftime('%200000000Y')",
        "'{:%200000000Y}'.format(now())",
        "format_date(now(), '%200000000Y')",
        "now().strptime('x' * 100000, 'x' * 100000)",
        # bytes
        "1 .to_bytes(200000000, 'big')",
        "'x'.encode().center(200000000)",
    ],
)
def test_text_beyond_the_budget_is_refused_before_it_is_built(source: str) -> None:
    assert_refused(source, TEXT_LIMIT)


def test_the_object_s_own_values_count_when_an_expression_copies_them() -> None:
    assert_refused("cs.note ~ cs.note", TEXT_LIMIT, note="x" * 600_000)
    assert evaluate("cs.note | length", note="x" * 600_000) == 600_000


@pytest.mark.parametrize("source", ["cs.note | upper", "cs.note.upper()", "cs.note | striptags"])
def test_a_value_read_from_the_object_larger_than_the_budget_is_not_worked_on(source) -> None:
    # Working on it would take time in proportion to its size before anything is built.
    assert_refused(source, TEXT_LIMIT, note="<b>x</b>" * 200_000)


@pytest.mark.parametrize(
    "source",
    [
        "mv.members | min",
        "mv.members | unique | first",
        "mv.members | select | first",
        "mv.members | join(',')",
        "mv.members | sum",
        "mv.members | map('string') | first",
    ],
)
def test_a_list_read_from_the_object_longer_than_the_budget_is_not_gone_through(source) -> None:
    mv = AttributeView({"members": list(range(300_000))}, multivalued=["members"])
    with pytest.raises(ExpressionError, match=ITEMS_LIMIT):
        compile_expression(source).evaluate(cs=AttributeView({}), mv=mv)
    assert compile_expression("mv.members | length").evaluate(mv=mv) == 300_000


# --------------------------------------------------------------------------- items


@pytest.mark.parametrize(
    "source",
    [
        "[1] * 200000000",
        "range(200000000) | list",
        "range(100000) | list | list",
        "[1] | batch(200000000, 0) | list",
        "[1] | slice(200000000) | list",
        "range(100000) | list | batch(1) | list",
        "('a ' * 400000).split() | length",
        "('a ' * 400000).split(' ') | length",
        "('a\n' * 400000).splitlines() | length",
        "split('a ' * 400000) | length",
        "('€' * 400000) | list | length",
        "('€' * 400000) | select | list | length",
        "('€' * 400000) | sort | length",
        "dict.fromkeys(range(100000), 'x' * 100) | length",
    ],
)
def test_items_beyond_the_budget_are_refused(source: str) -> None:
    message, peak = failure_and_peak(lambda: evaluate(source))
    assert ITEMS_LIMIT in message or TEXT_LIMIT in message, message
    assert peak < PEAK_BYTES, f"{source}: {peak:,} bytes allocated"


@pytest.mark.parametrize(
    "source", ["(10 ** 1000) ** 1000", "(2 ** 60000) * (2 ** 60000)", "(3 ** 60000) * 3 ** 60000"]
)
def test_numbers_are_bounded_in_bits(source: str) -> None:
    with pytest.raises(ExpressionError, match="larger than 100000 bits"):
        evaluate(source)


# --------------------------------------------------------------------------- time


@pytest.mark.parametrize(
    "source",
    [
        # Each step is cheap; there are billions of comparisons.
        "range(20000) | select('in', range(20000) | list) | list | length",
        "range(20000) | map('string') | select('in', range(20000) | map('string') | list)"
        " | list | length",
    ],
)
def test_an_evaluation_running_past_its_deadline_stops(settings, source: str) -> None:
    settings.JIM_EXPRESSION_TIME_LIMIT_MS = 50
    message, _ = failure_and_peak(lambda: evaluate(source))
    assert TIME_LIMIT in message and "50 ms" in message


def test_the_time_limit_applies_to_dn_templates(settings) -> None:
    settings.JIM_EXPRESSION_TIME_LIMIT_MS = 50
    template = compile_dn_template(
        "uid={{ range(20000) | select('in', range(20000) | list) | list | length }},dc=x"
    )
    with pytest.raises(ExpressionError, match=TIME_LIMIT):
        template.render(mv=AttributeView({}))


# --------------------------------------------------------------------------- DN templates


def test_a_dn_template_is_bounded_like_an_expression() -> None:
    template = compile_dn_template("uid={{ mv.uid | center(300000000) }},dc=example,dc=org")
    message, peak = failure_and_peak(lambda: template.render(mv=AttributeView({"uid": ["a"]})))
    assert TEXT_LIMIT in message
    assert peak < PEAK_BYTES


@pytest.mark.parametrize(
    "source",
    [
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}x",
        "{% macro f(n) %}{{ f(n) }}{{ f(n) }}{% endmacro %}{{ f(1) }}",
        "{% filter upper %}uid=x{% endfilter %}",
        "{% set x %}uid{% endset %}{{ x }}=a",
    ],
)
def test_a_dn_template_has_no_loops_macros_or_blocks(source: str) -> None:
    with pytest.raises(ExpressionSyntaxError, match="may use"):
        compile_dn_template(source)


def test_a_dn_template_keeps_if_and_set() -> None:
    template = compile_dn_template(
        "{% set ou = 'staff' if mv.kind == 'employee' else 'guests' %}"
        "uid={{ mv.uid }},ou={{ ou }},dc=example,dc=org"
    )
    assert template.render(mv=AttributeView({"uid": ["a"], "kind": ["employee"]})) == (
        "uid=a,ou=staff,dc=example,dc=org"
    )


# --------------------------------------------------------------------------- removed, compiled


@pytest.mark.parametrize("source", ["'x' | pprint", "'x' | urlize"])
def test_filters_with_no_use_and_no_bound_are_gone(source: str) -> None:
    with pytest.raises(ExpressionSyntaxError, match="No filter named"):
        compile_expression(source)


def test_compiling_folds_no_constant_filter_call() -> None:
    # Jinja2 evaluates constant filter calls when it compiles; unbudgeted, this one
    # would take 300 MB in `jim apply`.
    tracemalloc.start()
    try:
        compile_expression("'y' | center(300000000) | length")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < PEAK_BYTES


def test_an_expression_nested_past_python_s_stack_is_a_syntax_error() -> None:
    deep = "(" * 5000 + "1" + ")" * 5000
    with pytest.raises(ExpressionSyntaxError, match="nested too deeply"):
        compile_expression(deep)
    with pytest.raises(ExpressionSyntaxError, match="nested too deeply"):
        compile_dn_template("uid={{ " + deep + " }}")


def test_unpacking_is_bounded_before_python_unpacks() -> None:
    assert evaluate("coalesce(*['', 'b'])") == "b"
    assert_refused("coalesce(*cs.note)", ITEMS_LIMIT, note="€" * 200_000)


def test_lists_and_dicts_cannot_be_changed_in_place() -> None:
    with pytest.raises(ExpressionError):
        evaluate("[1].append(2)")


# --------------------------------------------------------------------------- configuration


def test_the_limits_come_from_the_settings(settings) -> None:
    settings.JIM_EXPRESSION_MAX_TEXT = 10
    settings.JIM_EXPRESSION_MAX_ITEMS = 3
    assert evaluate("'x' * 10") == "x" * 10
    with pytest.raises(ExpressionError, match=r"more than 10 characters .*JIM_EXPRESSION_MAX_TEXT"):
        evaluate("'x' * 11")
    assert evaluate("range(3) | list") == [0, 1, 2]
    with pytest.raises(ExpressionError, match=r"more than 3 items.*JIM_EXPRESSION_MAX_ITEMS"):
        evaluate("range(4) | list")


def test_each_evaluation_has_its_own_budget() -> None:
    expression = compile_expression("('x' * 600000) | length")
    for _ in range(3):
        assert expression.evaluate(cs=AttributeView({}), mv=AttributeView({})) == 600_000


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("'%s, %s' % ('Smith', 'John')", "Smith, John"),
        ("'%05d' % 42", "00042"),
        ("'{:>6}|{:.2f}'.format('ab', 1.5)", "    ab|1.50"),
        ("'x' | center(5)", "  x  "),
        ("['b', 'a'] | sort | join(',')", "a,b"),
        ("[[1], [2, 3]] | sum(start=[])", [1, 2, 3]),
        ("'a;b;c'.split(';')", ["a", "b", "c"]),
        ("'a b' | wordcount", 2),
        ("'abc' | reverse", "cba"),
        ("['A', 'B'] | map('lower')", ["a", "b"]),
        ("'  x' | indent(2, true)", "    x"),
        ("range(3) | batch(2, 0) | list", [[0, 1], [2, 0]]),
        ("now().strftime('%Y') | length", 4),
    ],
)
def test_ordinary_expressions_are_unaffected(source: str, expected: Any) -> None:
    assert evaluate(source) == expected


# --------------------------------------------------------------------------- end to end


@pytest.mark.django_db
def test_a_sync_fails_only_the_object_whose_expression_exceeds_the_budget(tmp_path) -> None:
    hr = make_csv_system(
        tmp_path,
        [
            person("1001", firstName="Ada", width="10"),
            person("1002", firstName="Grace", width="300000000"),
            person("1003", firstName="Alan", width="10"),
        ],
        profiles=(RunProfileType.FULL_IMPORT, RunProfileType.FULL_SYNC),
    )
    people = MetaverseObjectType.objects.create(name="person")
    for name in ("employeeId", "displayName"):
        MetaverseAttribute.objects.create(object_type=people, name=name)
    rule = SyncRule.objects.create(
        name="HR people in",
        connected_system=hr,
        direction=SyncRuleDirection.IMPORT,
        cs_object_type=ConnectedSystemObjectType.objects.get(connected_system=hr),
        mv_object_type=people,
        project=True,
    )
    SyncRuleJoin.objects.create(
        sync_rule=rule, cs_attribute="employeeId", mv_attribute="employeeId"
    )
    SyncRuleFlow.objects.create(sync_rule=rule, order=0, target="employeeId", source="employeeId")
    SyncRuleFlow.objects.create(
        sync_rule=rule,
        order=1,
        target="displayName",
        kind=FlowKind.EXPRESSION,
        expression="cs.firstName | center(cs.width | int) | trim",
    )
    assert run(hr, "Full Import").status == "complete"

    synced = run(hr, "Full Sync")

    assert synced.status == "complete_with_errors"
    assert errors(synced) == [("expression_error", "1002")]
    [error] = [item for item in rpeis(synced) if item.error_type]
    assert "sync rule 'HR people in'" in error.message
    assert "JIM_EXPRESSION_MAX_TEXT" in error.message
    names = sorted(mvo.attributes["displayName"] for mvo in MetaverseObject.objects.all())
    assert names == [["Ada"], ["Alan"]]


@pytest.mark.django_db
def test_a_dn_template_over_the_budget_fails_that_person_s_provisioning_only() -> None:
    scenario = build_scenario()
    scenario.dir_out.dn_template = (
        "uid={{ mv.accountName }},ou={{ mv.department | default('staff', true) }},"
        "ou=people,dc=example,dc=org"
    )
    scenario.dir_out.save()
    scenario.hr_row("1001", accountName="alovelace")
    scenario.hr_row("1002", accountName="ghopper", department="x" * 1_100_000)

    synced = scenario.sync()

    [error] = [item for item in rpeis(synced) if item.error_type]
    assert (error.error_type, error.external_id) == ("expression_error", "1002")
    assert "sync rule 'Directory people out': DN template" in error.message
    assert "JIM_EXPRESSION_MAX_TEXT" in error.message
    assert scenario.export_of("1001").dn == "uid=alovelace,ou=staff,ou=people,dc=example,dc=org"
    assert not PendingExport.objects.filter(dn__contains="ghopper").exists()


def _settings_with(**environment: str) -> subprocess.CompletedProcess[str]:
    """Import the settings module in a fresh interpreter with ``environment`` set."""
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import jim_project.settings as s; print(s.JIM_EXPRESSION_MAX_TEXT, "
            "s.JIM_EXPRESSION_MAX_ITEMS, s.JIM_EXPRESSION_TIME_LIMIT_MS)",
        ],
        cwd=Path(__file__).resolve().parent.parent,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("JIM_EXPRESSION_")},
            **environment,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_settings_are_read_from_the_environment() -> None:
    assert _settings_with().stdout.split() == ["1000000", "100000", "1000"]
    result = _settings_with(
        JIM_EXPRESSION_MAX_TEXT="5000",
        JIM_EXPRESSION_MAX_ITEMS="50",
        JIM_EXPRESSION_TIME_LIMIT_MS="250",
    )
    assert result.stdout.split() == ["5000", "50", "250"]


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("JIM_EXPRESSION_MAX_TEXT", "0", "JIM_EXPRESSION_MAX_TEXT must be at least 1"),
        ("JIM_EXPRESSION_TIME_LIMIT_MS", "soon", "JIM_EXPRESSION_TIME_LIMIT_MS='soon' is not"),
    ],
)
def test_a_bad_limit_stops_the_settings_import_with_its_name(variable, value, message) -> None:
    result = _settings_with(**{variable: value})
    assert result.returncode != 0
    assert message in result.stderr
