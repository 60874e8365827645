"""The leaderboard: one row per claim of expected/ (every scale), per device class that measured
it, judged on the pool of its records' measurements (cliprepro.pooling); a claim nobody measured
yet says what it needs. Pure functions of data; rendered as markdown, CSV and JSON.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass

from tabulate import tabulate

from cliprepro.ledger import Ledger, Pool, pool
from cliprepro.spec import ExpectedEntry, ExpectedFile, Suite

COLUMNS = ("suite", "claim", "scale", "role", "criterion", "expected", "threshold", "unit", "source_kind", "source", "device_class",
           "records", "measured", "lo", "hi", "n", "verdict", "reason", "latest", "needs")


@dataclass(frozen=True)
class BoardRow:
    suite: str
    claim: str
    scale: str
    role: str
    criterion: str  # what the claim asks of its measurement, in words
    expected: float | None  # the paper's number, or the calibrated / counted value a proxy claim uses
    threshold: float | None  # the bound a one-sided claim's interval must clear
    unit: str
    source_kind: str
    source: str
    device_class: str | None = None  # None: not measured on any device yet
    records: int = 0
    measured: float | None = None
    lo: float | None = None
    hi: float | None = None
    n: int = 0
    verdict: str = "not measured"
    reason: str = ""
    latest: str | None = None
    needs: str = ""


def expected_cell(e: ExpectedEntry) -> str:
    """What a claim asks of its measurement, in words (reports, docs/claims.md, the leaderboard)."""
    spread = getattr(e, "seed_spread", None)
    seeds = (f"; over seeds, widened by seed spread {spread.sd:g}"
             f"{f' (df {spread.df})' if spread.df else ' (declared)'}") if spread else ""
    if e.kind == "calibrated_effect":
        if e.value is None:
            return "not calibrated yet"
        return (f"calibrated {e.value:g} {e.unit}, keep ≥ {e.kept_fraction:g} of effect over "
                f"{e.null_value:g}{seeds}")
    if e.kind in ("at_least", "at_most"):
        return f"{e.kind.replace('_', ' ')} {e.value:g} {e.unit} (δ {e.rel_delta:g})"
    if e.kind == "direction":
        return f"the paper's direction: interval above {e.margin:g} {e.unit}{seeds}"
    if e.kind == "released_weights":
        return (f"{e.value:g} {e.unit} ± {e.published_rounding:g} rounding + {e.pipeline_allowance:g} "
                "pipeline allowance")
    if e.kind == "two_sided":
        return f"{e.value:g} {e.unit} ± {e.band_halfwidth:g}{seeds}"
    return f"{e.value:g} {e.unit} ± {e.abs_tolerance:g}"


def needs(suite: Suite, scale: str) -> str:
    """What a run of `suite` at `scale` needs, for a claim that has no record yet."""
    plan = suite.scales.get(scale)
    if plan is None:
        return f"a {scale} plan in suites/{suite.suite}.yaml (none yet)"
    parts = []
    if "cuda" in plan.requires:
        parts.append(f"a CUDA GPU ({plan.hardware})")
    stages = plan.params.get("stages", []) if isinstance(plan.params, dict) else []
    keys = [s["weights_key"] for s in stages if isinstance(s, dict) and s.get("weights_key")]
    if keys:
        parts.append("released weights (" + ", ".join(f"weights.{k}" for k in keys) + ") and ImageNet val "
                     "(imagenet_val) in the user config; or a cluster to train them (`--dry-run` prints the recipe)")
    if not parts:
        parts.append(f"a run: `cliprepro run {suite.suite} --scale {scale}` ({plan.hardware})")
    return "; ".join(parts)


def _row(suite: Suite, entry, p: Pool | None) -> BoardRow:
    base = dict(suite=suite.suite, claim=entry.claim, scale=entry.scale, role=entry.role,
                criterion=expected_cell(entry), expected=entry.expected_value(), threshold=entry.threshold(),
                unit=entry.unit, source_kind=entry.source_kind,
                source=" ".join(entry.source.split()))
    if p is None:
        return BoardRow(**base, needs=needs(suite, entry.scale))
    return BoardRow(**base, device_class=p.device_class, records=p.records, measured=p.value, lo=p.lo,
                    hi=p.hi, n=p.n, verdict=p.verdict, reason=p.reason, latest=p.latest)


def board_rows(suites: dict[str, Suite], expected: dict[str, ExpectedFile], ledger: Ledger) -> list[BoardRow]:
    pools: dict[tuple[str, str, str], list[Pool]] = {}
    for p in pool(ledger.rows, expected):
        pools.setdefault((p.suite, p.claim, p.scale), []).append(p)
    rows = []
    for name, suite in sorted(suites.items()):
        for entry in expected[name].entries:
            found = pools.get((name, entry.claim, entry.scale))
            rows += [_row(suite, entry, p) for p in found] if found else [_row(suite, entry, None)]
    return rows


def fmt(x: float | None) -> str:
    """A number as every report prints it: 5 significant digits, an em dash for none."""
    return "—" if x is None else f"{x:.5g}"


def _measured_cell(r: BoardRow) -> str:
    if r.measured is None:
        return "—"
    if r.lo is None or r.hi is None or r.lo == r.hi == r.measured:
        return fmt(r.measured)
    return f"{fmt(r.measured)} [{fmt(r.lo)}, {fmt(r.hi)}]"


def to_markdown(rows: list[BoardRow]) -> str:
    body = [[f"[{r.suite}]({r.suite}.md)", r.claim, r.scale, r.role,
             r.criterion, r.source_kind,
             r.device_class or "—", r.records or "—", _measured_cell(r), r.n or "—",
             r.verdict if r.device_class else f"not measured: needs {r.needs}", r.latest or "—"]
            for r in rows]
    return tabulate(body, ["suite", "claim", "scale", "role", "expected", "source", "device", "records",
                           "pooled measurement [judged interval]", "n", "verdict", "latest"], tablefmt="github")


def to_csv(rows: list[BoardRow]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in asdict(r).items()})
    return out.getvalue()


def to_json(rows: list[BoardRow]) -> str:
    return json.dumps({"columns": list(COLUMNS), "rows": [asdict(r) for r in rows]}, indent=1, sort_keys=True) + "\n"
