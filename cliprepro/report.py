"""Markdown reports: one page per suite and a leaderboard, rendered from records alone.

`render` is a pure function of (suites, expected files, records); its output is byte-identical
across processes, time zones and hash seeds (everything is sorted; no clock is read).
"""
from __future__ import annotations

from pathlib import Path

from tabulate import tabulate

from cliprepro import ablation
from cliprepro import record as rec
from cliprepro.errors import InputError
from cliprepro.board import BoardRow, board_rows, to_csv, to_json, to_markdown
from cliprepro.board import expected_cell
from cliprepro.board import fmt as _num
from cliprepro.ledger import Ledger, Row, build_ledger
from cliprepro.plots import accuracy_plot, claims_plot, throughput_plot, time_to_target_plot
from cliprepro.record import atomic_write_text
from cliprepro.spec import ExpectedFile, Suite


def _measured(r: rec.ClaimResult) -> str:
    if r.value is None:
        return "—"
    if r.lo is None or r.hi is None or (r.lo == r.hi == r.value):
        return _num(r.value)
    return f"{_num(r.value)} [{_num(r.lo)}, {_num(r.hi)}] (n={r.n})"


def _claims_table(expected: ExpectedFile) -> str:
    rows = [[e.claim, e.scale, e.role, e.metric, expected_cell(e), f"{e.source} ({e.source_kind})"]
            for e in expected.entries]
    return tabulate(rows, ["claim", "scale", "role", "metric", "expected", "source"], tablefmt="github")


def reason_cell(result) -> str:
    """A verdict's reason, and beside it what explained a miss (the verdict stays as judged)."""
    return f"{result.reason}; explained: {result.explanation}" if result.explanation else result.reason


def _results_table(rows: list[Row]) -> str:
    body = []
    for row in rows:
        r = row.result
        beside = ", ".join(f"{k} {v:g}" for k, v in sorted(r.beside.items()))
        verdict = f"{r.verdict} (stale)" if row.stale else r.verdict
        body.append([r.claim, r.scale, row.device_class, r.role, _measured(r), _num(r.threshold),
                     beside or "—", verdict, reason_cell(r), f"`{row.rid}`"])
    return tabulate(body, ["claim", "scale", "device", "role", "measured [interval]", "threshold",
                           "beside", "verdict", "reason", "record"], tablefmt="github")


def _environment(rows: list[Row]) -> str:
    seen: dict[str, list[str]] = {}
    for row in rows:
        p = row.record.provenance
        versions = p.get("packages", {}).get("versions", {})
        git = p.get("git", {})
        seen[row.rid] = [f"`{row.rid}`", row.record.record_type, row.record.scale, row.device_class,
                         str(p.get("started_utc", "—")), str(versions.get("torch")),
                         str(versions.get("open_clip_torch")),
                         f"{str(git.get('commit'))[:10]}{'+dirty' if git.get('dirty') else ''}",
                         _num(row.record.timings.get("wall_s")), row.record.status]
    return tabulate(sorted(seen.values(), key=lambda x: (x[4], x[0])),
                    ["record", "type", "scale", "device", "started (UTC)", "torch", "open_clip",
                     "commit", "wall s", "status"], tablefmt="github")


POINT_COLUMNS = (("mode", "mode"), ("arm", "arm"), ("tokens_first_block_seen", "tokens seen"),
                 ("context_length", "text ctx"), ("sdpa_kernels_seen", "SDPA kernel"),
                 ("img_per_s_median", "img/s"), ("ms_per_step_median", "ms/step"),
                 ("fwd_flops_per_sample", "fwd FLOPs/sample"),
                 ("mfu_vs_measured_matmul_pct", "MFU % (measured matmul peak)"),
                 ("mfu_vs_datasheet_pct", "MFU % (datasheet)"), ("peak_memory_mb", "peak MiB"))


def _cell(value) -> str:
    if isinstance(value, list):
        return ", ".join(str(v).replace("aten::_scaled_dot_product_", "") for v in value)
    return _num(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else (
        "—" if value is None else str(value))


PAIRED = ("gain_", "contrast_", "best_of_", "content_words_", "probe_", "train_time_saved_pct_")  # train runner metrics beyond acc1


def _cell_metric(m: rec.Metric) -> str:
    if m.lo is None or m.hi is None or m.lo == m.hi:
        return f"{_num(m.value)} {m.unit}"
    return f"{_num(m.value)} [{_num(m.lo)}, {_num(m.hi)}] {m.unit} (n={m.n})"


def _points(rows: list[Row]) -> str:
    """Sweep points and estimates of the newest run record per (scale, device)."""
    latest = {}
    for row in rows:
        latest[(row.record.scale, row.device_class)] = (row.rid, row.record)
    parts = []
    for (scale, device), (rid, record) in sorted(latest.items()):
        sweep = [p for p in record.points if "arm" in p]
        if sweep:
            parts += [f"### Sweep points: {scale} on {device} (record `{rid}`)", "",
                      tabulate([[_cell(p.get(k)) for k, _ in POINT_COLUMNS] for p in sweep],
                               [h for _, h in POINT_COLUMNS], tablefmt="github"), ""]
            why = sorted({p["peak_memory_how"] for p in sweep if p.get("peak_memory_how")})
            parts += [f"Peak memory: {'; '.join(why)}.", ""] if why else []
        stages = [p for p in record.points if "stage" in p]
        if stages:
            keys = ["stage", "seed"] + sorted({k for p in stages for k in p if k.startswith("acc1_")}) + sorted(
                {k for p in stages for k in p if "recall_at_1" in k}) + [
                k for k in ("image_tokens", "text_tokens", "train_gflop", "train_samples_per_s", "data_wait_fraction",
                            "train_vs_bare_step") if any(k in p for p in stages)] + [
                next((k for k in ("train_seconds", "seconds") if any(k in p for p in stages)), "seconds")]
            chance = record.inputs.get("chance_acc1_mean_pct")
            guess = f"; a uniform guess scores {chance:g} on acc1_mean" if chance is not None else ""
            parts += [f"### Stages: {scale} on {device} (record `{rid}`; zero-shot %, proxy data{guess})", "",
                      tabulate([[_cell(p.get(k)) for k in keys] for p in stages], keys, tablefmt="github"), ""]
        rows = ablation.table(record)
        if rows:
            parts += [f"### Ablation, row by row: {scale} on {device} (record `{rid}`; proxy, paired per "
                      "example; step time excludes data wait)", "", rows, ""]
        paired = sorted(k for k in record.metrics if k.startswith(PAIRED))
        if paired:
            parts += [f"### Paired contrasts and text checks: {scale} on {device} (record `{rid}`)", "",
                      tabulate([[k, _cell_metric(record.metrics[k])] for k in paired],
                               ["metric", "value [interval] (n seeds)"], tablefmt="github"), ""]
        estimates = [p for p in record.points if "days_estimate" in p or "a100_days_estimate" in p]
        if estimates:  # records before the schedules' targets say a100_days_*
            def days(p, k): return p.get(f"days_{k}", p.get(f"a100_days_{k}"))  # noqa: E306, E704
            parts += ["Modelled estimates (labelled as such; not measurements of the claim):", "",
                      tabulate([[p["schedule"], p.get("target", "A100-days"),
                                 f"{_num(days(p, 'estimate'))} [{_num(days(p, 'lo'))}, {_num(days(p, 'hi'))}]",
                                 _num(p.get("hours_estimate")), _num(p.get("usd_estimate")), p["measured_on"],
                                 p.get("model", "—"), p["note"]] for p in estimates],
                               ["schedule", "unit", "days, modelled [interval]", "device-hours", "USD",
                                "throughput measured on", "model", "schedule"], tablefmt="github"), ""]
    return "\n".join(parts)


def _calibration(expected: ExpectedFile, records: dict[str, rec.Record]) -> str:
    rows = []
    for e in expected.entries:
        for rid in getattr(e, "calibration", []):
            m = records[rid].metrics.get(e.metric) if rid in records else None
            measured = "missing" if m is None else f"{_num(m.value)} [{_num(m.lo)}, {_num(m.hi)}] (n={m.n})"
            started = records[rid].provenance.get("started_utc", "—") if rid in records else "—"
            rows.append([e.claim, e.metric, measured, f"`{rid}`", started])
    return tabulate(rows, ["claim", "metric", "measured [interval]", "record", "started (UTC)"],
                    tablefmt="github") if rows else ""


def suite_page(suite: Suite, expected: ExpectedFile, ledger: Ledger, plots: list[tuple[str, str]],
               records: dict[str, rec.Record]) -> str:
    mine = lambda rows: [r for r in rows if r.record.suite == suite.suite]  # noqa: E731
    runs, controls = mine(ledger.rows), mine(ledger.controls)
    parts = [f"# {suite.suite}: {suite.title}", "",
             f"**Claim.** {suite.claim}", "", f"**Source.** {suite.source}", "",
             f"**Command.** `{suite.command}`", "", f"**Proxy fidelity.** {suite.fidelity}", "",
             "Proxy values are calibrated on this project's own runs and labelled proxy; they are "
             "never compared with a paper's number.", "",
             "## Claims", "", _claims_table(expected), "", "## Results", ""]
    parts += [_results_table(runs) if runs else "No valid records yet.", ""]
    for alt, file in plots:
        parts += [f"![{alt}]({file})", ""]
    points = _points(runs)
    if points:
        parts += [points]
    if controls:
        kinds = ", ".join(f"`{name}`: {'mechanism off' if c.kind == 'mechanism_off' else 'sensitivity check'}"
                          for name, c in sorted(suite.negative_controls.items()))
        parts += ["## Negative controls", "",
                  "Each gate's mechanism switched off (or, where a gate has no mechanism, a named "
                  f"sensitivity check); a control must give `not_reproduced`. Here: {kinds}.", "",
                  _results_table(controls), ""]
    calibration = _calibration(expected, records)
    if calibration:
        parts += ["## Calibration runs", "",
                  "The measurements each calibrated entry's value, spread and half-width come from "
                  "(cited by id in expected/; never reused as checks).", "", calibration, ""]
    envs = runs + controls
    if envs:
        parts += ["## Environment", "", _environment(envs), ""]
    incomplete = [(x.record, x.reason) for x in ledger.incomplete if x.suite == suite.suite]
    if incomplete:
        parts += ["## Runs that did not complete", "", "Never pooled into the leaderboard.", "",
                  tabulate(incomplete, ["record", "reason"], tablefmt="github"), ""]
    rejected = [(x.record, x.reason) for x in ledger.rejected if x.suite == suite.suite]
    if rejected:
        parts += ["## Rejected records", "", tabulate(rejected, ["record", "reason"], tablefmt="github"), ""]
    return "\n".join(parts)


def leaderboard(suites: dict[str, Suite], rows: list[BoardRow], ledger: Ledger) -> str:
    measured = sum(1 for r in rows if r.device_class)
    stale = sum(1 for r in ledger.rows if r.stale)
    parts = ["# cliprepro leaderboard", "",
             f"Every claim of expected/ ({len({(r.suite, r.claim, r.scale) for r in rows})} claim-scale "
             f"pairs), one row per device class that measured it ({measured} rows measured). A row judges "
             "the pool of its records' measurements (per-seed or per-round samples together), not a "
             "vote of their verdicts. Proxy rows check a mechanism at toy size on calibrated values, "
             "never the paper's number; a claim not measured yet says what it needs. Also as "
             "[leaderboard.csv](leaderboard.csv) and [leaderboard.json](leaderboard.json).", "",
             to_markdown(rows), ""]
    if stale:
        parts += [f"{stale} result(s) were judged against an older expected entry (stale) and are "
                  "shown on their suite pages only.", ""]
    if ledger.incomplete:
        parts += ["## Runs that did not complete", "", "Never pooled: a crash or a runtime overrun.", "",
                  tabulate([(x.suite, x.record, x.reason) for x in ledger.incomplete],
                           ["suite", "record", "reason"], tablefmt="github"), ""]
    if ledger.rejected:
        parts += ["## Rejected records", "",
                  tabulate([(x.suite, x.record, x.reason) for x in ledger.rejected],
                           ["suite", "record", "reason"], tablefmt="github"), ""]
    parts += ["## Suites", ""] + [f"- [{name}]({name}.md): {s.title}" for name, s in sorted(suites.items())]
    return "\n".join(parts) + "\n"


PLOTS = {  # runner -> (file suffix, alt text, plot of a suite's run records)
    "throughput": [("throughput", "throughput vs mask ratio", throughput_plot)],
    "train": [("accuracy", "zero-shot accuracy vs training compute", accuracy_plot),
              ("time_to_target", "zero-shot accuracy vs training step time, per arm and seed", time_to_target_plot)],
}


def render(suites: dict[str, Suite], expected: dict[str, ExpectedFile],
           records: list[tuple[str, rec.Record]], invalid: list[tuple[str, str]]) -> dict[str, bytes]:
    """File name -> content for the whole report folder."""
    from cliprepro.check import record_problems

    ledger = build_ledger(records, invalid, expected,
                          check=lambda r: record_problems(r, suites, expected, stale_ok=True))
    files: dict[str, bytes] = {}
    rows = board_rows(suites, expected, ledger)
    accepted = {row.rid for row in ledger.rows}  # plots draw accepted records only, as the tables do
    for name, suite in sorted(suites.items()):
        mine = sorted(((rid, r) for rid, r in records
                       if r.suite == name and r.record_type == "run" and rid in accepted),
                      key=lambda x: (str(x[1].provenance.get("started_utc")), x[0]))
        plots = []
        drawn = [("claims", "claimed vs measured, per scale and device class",
                  claims_plot([r for r in rows if r.suite == name]))]
        drawn += [(kind, alt, draw(mine)) for kind, alt, draw in PLOTS.get(suite.runner, [])]
        for kind, alt, png in drawn:
            if png:
                files[f"{name}_{kind}.png"] = png
                plots.append((alt, f"{name}_{kind}.png"))
        files[f"{name}.md"] = suite_page(suite, expected[name], ledger, plots, dict(records)).encode()
    files["README.md"] = leaderboard(suites, rows, ledger).encode()
    files["leaderboard.csv"] = to_csv(rows).encode()
    files["leaderboard.json"] = to_json(rows).encode()
    return files


def load_records(folders: list[Path]) -> tuple[list[tuple[str, rec.Record]], list[tuple[str, str]]]:
    records, invalid = [], []
    for folder in folders:
        for path in rec.find(folder):
            try:
                records.append(rec.read(path))
            except InputError as exc:
                invalid.append((path.name, f"{exc.field}: {exc.problem}"))
    return records, invalid


def write_reports(files: dict[str, bytes], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = out / name
        if name.endswith((".md", ".csv", ".json")):
            atomic_write_text(path, content.decode())
        else:
            tmp = path.with_suffix(path.suffix + ".tmp")
            tmp.write_bytes(content)
            tmp.replace(path)
