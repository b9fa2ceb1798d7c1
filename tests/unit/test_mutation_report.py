"""The mutation report's rule for leaving a survivor out of the score must not hide behaviour.

Only a change confined to a human-readable message (a string with a space, or an f-string) is
"message text"; a changed key, code, operator or number is behaviour and stays counted.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts import mutation_report as report


def diff(before: str, after: str) -> str:
    return f"--- a.py\n+++ a.py\n@@ -1,3 +1,3 @@\n def f():\n-    {before}\n+    {after}\n"


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ('raise ValueError("price is missing")', 'raise ValueError("XXprice is missingXX")'),
        ('return fail(code, f"qty {q} over cap")', 'return fail(code, f"XXqty {q} over capXX")'),
        ('detail = "no quantity at order precision"', 'detail = "NO QUANTITY AT ORDER PRECISION"'),
    ],
)
def test_text_only_when_only_a_message_changes_then_true(before: str, after: str) -> None:
    assert report.text_only(diff(before, after)) is True


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ('qty = body["qty"]', 'qty = body["XXqtyXX"]'),  # a key: behaviour
        ('return "reject"', 'return "XXrejectXX"'),  # a code: behaviour
        ('raise ValueError("price is missing")', "raise ValueError(None)"),  # not a string swap
        ("if a > b:", "if a >= b:"),
        ('if x == "a b": return 1', 'if x == "XXa bXX": return 2'),  # message and number
        ("limit = 0.5", "limit = 1.5"),
    ],
)
def test_text_only_when_behaviour_changes_then_false(before: str, after: str) -> None:
    assert report.text_only(diff(before, after)) is False


def test_text_only_when_two_lines_change_then_false() -> None:
    two = "-    a = 'x y'\n-    b = 1\n+    a = 'XXx yXX'\n+    b = 2\n"
    assert report.text_only(two) is False


def test_collect_when_results_recorded_then_scores_each_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    meta = tmp_path / "mutants" / "app" / "decision.py.meta"
    meta.parent.mkdir(parents=True)
    codes = {"app.decision.x_f__mutmut_1": 1, "app.decision.x_f__mutmut_2": 36}
    codes |= {"app.decision.x_f__mutmut_3": 0, "app.decision.x_f__mutmut_4": None}
    meta.write_text(json.dumps({"exit_code_by_key": codes}))
    equivalents = tmp_path / "eq.yaml"
    equivalents.write_text("- mutant: app.decision.x_f__mutmut_3\n  reason: same result\n")
    monkeypatch.setattr(report, "MUTANTS", tmp_path / "mutants")
    monkeypatch.setattr(report, "EQUIVALENTS", equivalents)

    modules, stale = report.collect()

    m = modules["app/decision.py"]
    assert (m.total, m.killed, m.not_checked) == (4, 2, 1)
    assert m.equivalent == [("app.decision.x_f__mutmut_3", "same result")]
    assert m.survivors == ["app.decision.x_f__mutmut_4"]  # not checked is never a pass
    assert m.score == pytest.approx(100 * 2 / 3)
    assert stale == []
    assert any("not checked" in f for f in report.failures(modules))


def test_equivalents_file_when_loaded_then_every_entry_names_a_mutated_module_and_a_reason() -> (
    None
):
    entries = report.load_equivalents()
    modules = {p.removesuffix(".py").replace("/", ".") for p in report.TARGETS}
    assert entries
    for name, reason in entries.items():
        assert name.rsplit(".x_", 1)[0] in modules, name
        assert "__mutmut_" in name and len(reason) > 20, name
