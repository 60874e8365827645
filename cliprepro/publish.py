"""Publishing commands: `report` (reports/ from records), `check` (a record before submission),
`export` (clip_benchmark result files), `rerun` (a record's suite with its stored configuration)
and `compare` (two records side by side). Each reads records, checks them (cliprepro.check) and
writes atomically."""
from __future__ import annotations

from pathlib import Path

from cliprepro.layout import Layout


def render_into(layout: Layout, build_root: Path | None) -> Path:
    """Reports from committed results/ only, or (proxy / CI runs) from build/ plus results/."""
    from cliprepro.report import load_records, render, write_reports

    suites = {n: layout.load(n)[0] for n in layout.suite_names()}
    expected = {n: layout.load(n)[1] for n in layout.suite_names()}
    folders = [layout.results] + ([build_root / "results"] if build_root else [])
    records, invalid = load_records(folders)
    out = (build_root / "reports") if build_root else layout.reports
    write_reports(render(suites, expected, records, invalid), out)
    return out


def cmd_report(args, layout: Layout) -> int:
    out = render_into(layout, Path(args.build) if args.build else None)
    print(f"report: {out / 'README.md'}")
    return 0


def cmd_check(args, layout: Layout) -> int:
    """Each record: read (schema, content hash), then cliprepro.check; 0 only when all can count."""
    from cliprepro import record as rec
    from cliprepro.check import record_problems

    suites = {n: layout.load(n)[0] for n in layout.suite_names()}
    expected = {n: layout.load(n)[1] for n in layout.suite_names()}
    bad = 0
    for name in args.records:
        rid, record = rec.read(Path(name))  # unreadable: InputError, exit 2 naming the file and field
        if record.record_type == "calibration":
            print(f"{name}: a calibration record; `cliprepro validate` checks it with the entries citing it")
            continue
        problems = record_problems(record, suites, expected)
        bad += bool(problems)
        print(f"{name}: {'ok, can be submitted' if not problems else 'REJECTED'}")
        for p in problems:
            print(f"  - {p}")
    return 1 if bad else 0


def cmd_export(args, layout: Layout) -> int:
    """clip_benchmark result JSON for every zero-shot evaluation of the records reports accept."""
    from cliprepro.check import record_problems
    from cliprepro.errors import out_folder
    from cliprepro.exports import clip_benchmark_results
    from cliprepro.ledger import build_ledger
    from cliprepro.record import atomic_write_text
    from cliprepro.report import load_records

    out = out_folder(args.out, "OUT")
    suites = {n: layout.load(n)[0] for n in layout.suite_names()}
    expected = {n: layout.load(n)[1] for n in layout.suite_names()}
    folders = [layout.results] + ([Path(args.build) / "results"] if args.build else [])
    records, invalid = load_records(folders)
    ledger = build_ledger(records, invalid, expected, check=lambda r: record_problems(r, suites, expected, stale_ok=True))
    accepted = {row.rid: row.record for row in ledger.rows}
    files = clip_benchmark_results(sorted(accepted.items()))
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        atomic_write_text(out / name, text)
    print(f"{len(files)} clip_benchmark result files from {len(accepted)} records in {out} "
          f"(read them with: clip_benchmark build {out} --output benchmark.csv)")
    return 0


def cmd_compare(args, layout: Layout) -> int:
    from cliprepro import record as rec
    from cliprepro.compare import compare_text
    from cliprepro.errors import InputError

    ida, a = rec.read(Path(args.a))
    idb, b = rec.read(Path(args.b))
    if a.suite != b.suite:
        raise InputError(Path(args.b), "suite", f"{b.suite!r}; compare needs two records of one suite ({a.suite!r})")
    print(compare_text(ida, a, idb, b))
    return 0


def _rerunnable(layout: Layout, path: Path, old) -> None:
    """A record `rerun` can repeat: a run or control record whose stored params still validate
    (bad input, exit 2, naming the record's field otherwise)."""
    from pydantic import ValidationError

    from cliprepro.errors import InputError
    from cliprepro.spec import describe_validation_error
    from runners import params_schema

    if old.record_type == "calibration":
        raise InputError(path, "record_type", "a calibration record is not re-run: a check never trains the "
                         f"calibration's models (docs/verdicts.md); `cliprepro calibrate {old.suite}` makes a fresh one")
    suite, _ = layout.load(old.suite)
    if old.scale not in suite.scales:
        raise InputError(path, "scale", f"suites/{old.suite}.yaml has no scale {old.scale!r} now; "
                         f"it has {', '.join(suite.scales)}")
    params = old.config.get("params")
    if not isinstance(params, dict):
        raise InputError(path, "config.params", "must be the object of parameters the run used; "
                         f"this record has {type(params).__name__}: nothing to re-run with")
    schema = params_schema(suite.runner_at(old.scale), old.scale)
    try:
        schema.model_validate(params)
    except ValidationError as exc:  # an older runner's params: re-run the suite itself instead
        err = describe_validation_error(path, exc, schema)
        raise InputError(path, f"config.params.{err.field}", f"{err.problem} (made by an older version of "
                         f"the runner: `cliprepro run {old.suite} --scale {old.scale}` runs today's)") from None


def cmd_rerun(args, layout: Layout) -> int:
    """Say what differs from the record's environment, then run its suite, scale and control with
    the parameters it stored (seeds included), as `run` does."""
    from tabulate import tabulate

    from cliprepro import record as rec
    from cliprepro.compare import differences, environment
    from cliprepro.provenance import collect
    from cliprepro.cli import _outcome_status, _print_outcome
    from cliprepro.runflow import execute

    path = Path(args.record)
    rid, old = rec.read(path)
    _rerunnable(layout, path, old)
    env = differences(environment(old.provenance), environment(collect(layout.root)))
    print(f"rerun of {rid}: {old.suite} @ {old.scale}" + (f", control {old.negative_control}" if old.negative_control else ""))
    print("environment differs from the record's:\n" + tabulate(env, ["key", "record", "here"], tablefmt="simple")
          if env else "environment: the same commit, device class, python and packages as the record")
    outcome = execute(layout, old.suite, scale=old.scale, control=old.negative_control,
                      stored_params=old.config.get("params"), dry_run=args.dry_run)
    if args.dry_run:
        print(outcome.plan_text)
        return 0
    _print_outcome(outcome)
    return _outcome_status(outcome)
