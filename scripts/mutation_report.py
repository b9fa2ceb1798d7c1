"""Mutation report for the decision core: score per module from mutmut's results.

Run after ``mutmut run`` (``make mutate`` does both). Reads ``mutants/**/*.meta`` (mutmut's own
record of each mutant's exit code) and ``docs/mutation-equivalents.yaml`` (survivors judged
equivalent, each with its reason), writes ``docs/mutation-report.md``, and with ``--check`` exits 1
when a module is under its target or a survivor is neither killed nor explained.

Counting (stated in the report too):
- killed = killed by a test, a timeout (the mutant looped), or the type checker;
- a mutant that survives and only rewrites the text of a human-readable message (a string
  literal with a space in it, or an f-string, and nothing else on the line changed) is listed
  as "message text" and left out of the score: reason codes are enum values, never such strings;
- a survivor listed in the equivalents file is left out of the score, with its reason;
- every other survivor (including "no tests") counts against the module.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
MUTANTS = ROOT / "mutants"
EQUIVALENTS = ROOT / "docs" / "mutation-equivalents.yaml"
REPORT = ROOT / "docs" / "mutation-report.md"
COMMAND = "make mutate"

# Target per module (percent of behaviour-changing mutants killed), from issue 13.
TARGETS: dict[str, float] = {
    "app/gates/checks.py": 95.0,
    "app/gates/context.py": 95.0,
    "app/gates/limits.py": 95.0,
    "app/gates/plan.py": 95.0,
    "app/gates/prices.py": 95.0,
    "app/decision.py": 95.0,
    "app/registry/states.py": 95.0,
    "app/registry/promotion.py": 95.0,
    "app/review/heuristic.py": 90.0,
    "app/rollout/splitter.py": 90.0,
    "app/drift/stats.py": 90.0,
}

KILLED = {1, 3, 36, 37, -24, 24, 152, 255, -11, -9}
SURVIVED = {0, 5, 33}


@dataclass
class Module:
    path: str
    total: int = 0
    killed: int = 0
    not_checked: int = 0
    skipped: int = 0
    text_only: list[str] = field(default_factory=list)
    equivalent: list[tuple[str, str]] = field(default_factory=list)
    survivors: list[str] = field(default_factory=list)

    @property
    def counted(self) -> int:
        return self.total - len(self.text_only) - len(self.equivalent) - self.skipped

    @property
    def score(self) -> float:
        return 100.0 * self.killed / self.counted if self.counted else 100.0


def _tokens(line: str) -> list[tuple[int, str]] | None:
    try:
        toks = tokenize.generate_tokens(io.StringIO(line.strip() + "\n").readline)
        return [(t.type, t.string) for t in toks if t.type not in (tokenize.NL, tokenize.NEWLINE)]
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return None


def _is_message(tok: str) -> bool:
    body = tok.lstrip("rbuRBUfF")
    return " " in body or tok[:1] in "fF" or tok[:2].lower() in ("rf", "fr")


def text_only(diff: str) -> bool:
    """True when the diff changes one line, and only inside message-like string literals."""
    removed = [ln[1:] for ln in diff.splitlines() if ln.startswith("-") and not ln.startswith("--")]
    added = [ln[1:] for ln in diff.splitlines() if ln.startswith("+") and not ln.startswith("++")]
    if len(removed) != 1 or len(added) != 1:
        return False
    before, after = _tokens(removed[0]), _tokens(added[0])
    if before is None or after is None or len(before) != len(after):
        return False
    changed = [(b, a) for b, a in zip(before, after, strict=True) if b != a]
    if not changed:
        return False
    for b, a in changed:
        if b[0] != a[0] or b[0] not in (tokenize.STRING, getattr(tokenize, "FSTRING_MIDDLE", -1)):
            return False
        if b[0] == tokenize.STRING and not _is_message(b[1]):
            return False
    return True


def _diff(name: str, rel: str) -> str:
    """mutmut's own diff of one mutant (read from mutants/, relative to the project root)."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    return get_diff_for_mutant(name, path=rel)


def load_equivalents() -> dict[str, str]:
    if not EQUIVALENTS.exists():
        return {}
    entries = yaml.safe_load(EQUIVALENTS.read_text()) or []
    out: dict[str, str] = {}
    for e in entries:
        if not (isinstance(e, dict) and e.get("mutant") and e.get("reason")):
            raise SystemExit(f"{EQUIVALENTS}: every entry needs 'mutant' and 'reason': {e!r}")
        out[str(e["mutant"])] = str(e["reason"])
    return out


def collect() -> tuple[dict[str, Module], list[str]]:
    equivalents = load_equivalents()
    used: set[str] = set()
    modules: dict[str, Module] = {}
    for meta in sorted(MUTANTS.glob("app/**/*.py.meta")):
        rel = meta.relative_to(MUTANTS).as_posix().removesuffix(".meta")
        codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
        if not codes:
            continue
        m = modules.setdefault(rel, Module(rel))
        for name, code in sorted(codes.items()):
            m.total += 1
            if code is None:
                m.not_checked += 1
                m.survivors.append(name)
            elif code == 34:
                m.skipped += 1
            elif code in KILLED:
                m.killed += 1
            elif name in equivalents:
                used.add(name)
                m.equivalent.append((name, equivalents[name]))
            elif text_only(_diff(name, rel)):
                m.text_only.append(name)
            else:
                m.survivors.append(name)
    stale = sorted(set(equivalents) - used)
    return modules, stale


def render(modules: dict[str, Module], stale: list[str]) -> str:
    lines = [
        "# Mutation report: the decision core",
        "",
        f"Reproduce: `{COMMAND}` (mutmut 3.8, every mutant run; configuration in",
        "`pyproject.toml` `[tool.mutmut]`; equivalents in `docs/mutation-equivalents.yaml`).",
        "Score = killed / (all mutants - message-text survivors - listed equivalents); a timeout",
        "or a type-checker rejection counts as killed; `no tests` counts as a survivor.",
        "",
        "| module | mutants | killed | message text | equivalent | survivors | score | target |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for path, m in sorted(modules.items()):
        target = TARGETS.get(path)
        lines.append(
            f"| `{path}` | {m.total} | {m.killed} | {len(m.text_only)} | {len(m.equivalent)} "
            f"| {len(m.survivors)} | {m.score:.1f}% | {f'{target:.0f}%' if target else '-'} |"
        )
    lines += ["", "## Survivors not explained", ""]
    open_ = [s for m in modules.values() for s in m.survivors]
    lines += [f"- `{s}`" for s in open_] or ["None."]
    lines += ["", "## Equivalent mutants (left out of the score)", ""]
    eq = [(n, r) for m in modules.values() for n, r in m.equivalent]
    lines += [f"- `{n}`: {r}" for n, r in eq] or ["None."]
    lines += ["", "## Message-text mutants (left out of the score)", ""]
    txt = [n for m in modules.values() for n in m.text_only]
    lines += [f"- `{n}`" for n in txt] or ["None."]
    if stale:
        lines += ["", "## Stale equivalents (no longer surviving or renamed)", ""]
        lines += [f"- `{n}`" for n in stale]
    return "\n".join(lines) + "\n"


def failures(modules: dict[str, Module]) -> list[str]:
    out = []
    for path, target in TARGETS.items():
        m = modules.get(path)
        if m is None:
            out.append(f"{path}: no mutation results")
        elif m.not_checked:
            out.append(f"{path}: {m.not_checked} mutants not checked")
        elif m.score < target:
            out.append(f"{path}: {m.score:.1f}% < {target:.0f}%")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Mutation score per module of the decision core.")
    ap.add_argument("--write", action="store_true", help=f"write {REPORT.relative_to(ROOT)}")
    ap.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = ap.parse_args(argv)
    if not MUTANTS.exists():
        print("no mutants/ directory: run `mutmut run` first", file=sys.stderr)
        return 2
    os.chdir(ROOT)  # mutmut reads mutants/ relative to the working directory
    modules, stale = collect()
    text = render(modules, stale)
    if args.write:
        REPORT.write_text(text)
    print(text)
    bad = failures(modules)
    for b in bad:
        print(f"under target: {b}", file=sys.stderr)
    return 1 if (args.check and bad) else 0


if __name__ == "__main__":
    sys.exit(main())
