"""docs/claims.md: every number the suites assert, with its source, rendered from suites/ and
expected/ so it cannot drift from what is judged (a test compares the committed file).

    cliprepro docs    # rewrites docs/claims.md
"""
from __future__ import annotations

from tabulate import tabulate

from cliprepro.board import expected_cell
from cliprepro.spec import ExpectedFile, Suite

HEADER = """# Claims reference

Every claim the suites judge, generated from `suites/` (the claim card) and `expected/` (the
numbers) by `cliprepro docs`; do not edit by hand. A **primary** source is the paper, its code or
the authors' release notes; **secondary** is a summary by others (the original was not found);
**derived** is computed from a primary source (for example token counts from a script's image
size); **calibration** is this project's own runs, for proxy-scale mechanism checks, never compared
with a paper's number. How each kind of claim is judged: [verdicts.md](verdicts.md).
"""


def render(suites: dict[str, Suite], expected: dict[str, ExpectedFile]) -> str:
    parts = [HEADER]
    counts = {"primary": 0, "secondary": 0, "derived": 0, "calibration": 0}
    for name in sorted(suites):
        suite, exp = suites[name], expected[name]
        rows = []
        for e in exp.entries:
            counts[e.source_kind] += 1
            note = f" {e.note}" if e.note else ""
            rows.append([f"`{e.claim}`", e.scale, e.role, e.kind, expected_cell(e),
                         f"{e.source} ({e.source_kind}).{note}"])
        parts += [f"## {name}: {suite.title}", "", f"**Claim.** {suite.claim}", "",
                  f"**Source.** {suite.source}", "", f"**Scales.** {', '.join(sorted(suite.scales))} "
                  f"(CI: {suite.ci_scale}); command: `{suite.command}`", "",
                  tabulate(rows, ["claim", "scale", "role", "kind", "expected", "source"], tablefmt="github"), ""]
    total = sum(counts.values())
    parts.insert(1, f"{total} entries in {len(suites)} suites: "
                 + ", ".join(f"{n} {k}" for k, n in counts.items()) + ".\n")
    return "\n".join(parts)
