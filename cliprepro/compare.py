"""Two records of one suite side by side (pure: records in, text out): what differs in their
configuration and provenance, each claim's value and verdict, and, where both kept per-example
predictions for a stage, a paired test of the accuracy difference on the same examples."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from tabulate import tabulate

from cliprepro.board import fmt
from cliprepro.record import Record


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in sorted(value.items()):
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def differences(a: dict, b: dict) -> list[tuple[str, Any, Any]]:
    fa, fb = flatten(a), flatten(b)
    return [(k, fa.get(k, "—"), fb.get(k, "—")) for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)]


def environment(p: dict[str, Any]) -> dict[str, Any]:
    """What of a provenance (a record's, or cliprepro.provenance.collect's) decides whether a rerun
    can match it."""
    return {"commit": (p.get("git") or {}).get("commit"), "dirty": (p.get("git") or {}).get("dirty"),
            "device_class": (p.get("device") or {}).get("device_class"), "python": p.get("python"),
            "platform": p.get("platform"), "packages": (p.get("packages") or {}).get("versions", {})}


def paired_stage_tests(a: Record, b: Record) -> list[list[Any]]:
    """Per stage evaluated in both: per-example accuracy averaged over each record's seeds, B - A
    in pp, its standard error over examples, z and a two-sided normal p-value."""
    from cliprepro import predictions

    unreadable: set[str] = set()

    def per_stage(r: Record) -> dict[str, list[np.ndarray]]:
        out: dict[str, list[np.ndarray]] = {}
        for point in r.points:
            if isinstance(point.get("predictions"), dict) and isinstance(point.get("stage"), str):
                try:
                    out.setdefault(point["stage"], []).append(predictions.unpack(point["predictions"]).astype(float))
                except predictions.Malformed:  # `cliprepro check` says where; here the stage is not paired
                    unreadable.add(point["stage"])
        return out

    sa, sb = per_stage(a), per_stage(b)
    rows = []
    for stage in sorted(set(sa) & set(sb) | unreadable):
        if stage in unreadable:
            rows.append([stage, "—", "—", "—", "—", "predictions that do not decode: not paired (cliprepro check)"])
            continue
        if len({x.size for x in sa[stage] + sb[stage]}) != 1:
            rows.append([stage, "—", "—", "—", "—", "evaluated on different example sets: not paired"])
            continue
        d = 100 * (np.mean(sb[stage], axis=0) - np.mean(sa[stage], axis=0))
        se = float(d.std(ddof=1) / math.sqrt(d.size)) if d.size > 1 else 0.0
        if se > 0:
            z = float(d.mean()) / se
        else:  # every example differs by the same amount: none (identical) or all one way
            z = 0.0 if d.mean() == 0 else math.copysign(math.inf, float(d.mean()))
        p = math.erfc(abs(z) / math.sqrt(2))
        rows.append([stage, round(float(d.mean()), 3), round(se, 3), round(z, 2), f"{p:.3g}",
                     f"{len(sa[stage])} vs {len(sb[stage])} seeds, {d.size} examples"])
    return rows


def compare_text(ida: str, a: Record, idb: str, b: Record) -> str:
    parts = [f"# {a.suite}: A = {ida} ({a.scale}, {a.record_type}) vs B = {idb} ({b.scale}, {b.record_type})", ""]
    config = differences(a.config, b.config)
    parts += ["## Configuration", "", tabulate(config, ["key", "A", "B"], tablefmt="github")
              if config else "identical", ""]
    env = differences(environment(a.provenance), environment(b.provenance))
    parts += ["## Environment", "", tabulate(env, ["key", "A", "B"], tablefmt="github") if env else "identical", ""]
    ra, rb = {x.claim: x for x in a.results}, {x.claim: x for x in b.results}
    claims = [[c, f"{fmt(ra[c].value)} [{fmt(ra[c].lo)}, {fmt(ra[c].hi)}]" if c in ra else "—",
               ra[c].verdict if c in ra else "—",
               f"{fmt(rb[c].value)} [{fmt(rb[c].lo)}, {fmt(rb[c].hi)}]" if c in rb else "—",
               rb[c].verdict if c in rb else "—"] for c in sorted(set(ra) | set(rb))]
    parts += ["## Claims", "", tabulate(claims, ["claim", "A", "A verdict", "B", "B verdict"], tablefmt="github"), ""]
    paired = paired_stage_tests(a, b)
    parts += ["## Paired accuracy, B − A (same examples)", "",
              tabulate(paired, ["stage", "B−A pp", "s.e.", "z", "p", "over"], tablefmt="github")
              if paired else "no stage with per-example predictions in both records", ""]
    return "\n".join(parts)
