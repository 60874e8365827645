"""`cliprepro`: list, validate, run, calibrate, docs; report, check, export, rerun, compare
(cliprepro.publish).

Exit status: 2 for bad input (a message naming file, field and what is allowed; no traceback);
1 when a claim is `error` or a gate is not `reproduced`; otherwise 0.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys

from tabulate import tabulate

from cliprepro import progress
from cliprepro.errors import InputError, env_number, out_folder
from cliprepro.layout import Layout
from cliprepro.publish import cmd_check, cmd_compare, cmd_export, cmd_report, cmd_rerun, render_into
from cliprepro.record import Record
from cliprepro.verdict import exit_status


def _print_outcome(outcome) -> None:
    from cliprepro.report import _measured, reason_cell  # one formatting of measured values

    r: Record = outcome.record
    device = r.provenance.get("device", {}).get("device_class", "—")
    kind = f" negative control {r.negative_control!r}" if r.negative_control else ""
    print(f"\n{r.suite} @ {r.scale}{kind} on {device}: {r.status}"
          f"{' (' + r.message.splitlines()[0] + ')' if r.message else ''}")
    rows = [[x.role, x.claim, x.metric, _measured(x), "—" if x.threshold is None else f"{x.threshold:.4g}",
             ", ".join(f"{k} {v:g}" for k, v in x.beside.items()) or "—", x.verdict, reason_cell(x)]
            for x in r.results]
    if rows:
        print(tabulate(rows, ["role", "claim", "metric", "measured [interval]", "threshold", "beside",
                              "verdict", "reason"], tablefmt="simple"))
    print(f"record: {outcome.path}")


def _outcome_status(outcome) -> int:
    r: Record = outcome.record
    if r.negative_control:  # a control must make its gates fail
        return 0 if r.results and all(x.verdict == "not_reproduced" for x in r.results) else 1
    if r.status == "error":
        return 1
    return exit_status((x.role, x.verdict) for x in r.results)


def _why_failed(outcome) -> list[str]:
    """What made a run's exit status 1, a line each (the last lines of a CI log say it)."""
    r: Record = outcome.record
    if _outcome_status(outcome) == 0:
        return []
    if r.status == "error":
        return [f"{r.suite}: error: {r.message.splitlines()[0] if r.message else '(no message)'}"]
    if r.negative_control:
        return [f"{r.suite}: control {r.negative_control}: {x.claim} {x.verdict} (a control must fail)"
                for x in r.results if x.verdict != "not_reproduced"] or [f"{r.suite}: control measured nothing"]
    # the rule of exit_status, result by result; a skipped gate has its own closing line
    return [f"{r.suite}: {x.role} {x.claim} {x.verdict}: {x.reason}" for x in r.results
            if x.verdict != "skipped" and exit_status([(x.role, x.verdict)])]


def cmd_run(args, layout: Layout) -> int:
    from cliprepro.runflow import execute, pick_scale

    # read inside the trainer pool (runners.training.stage.trainer_jobs): a typo is refused here, before anything runs
    env_number("CLIPREPRO_TRAIN_JOBS", "1")
    if args.train or args.launcher or args.cluster or args.job:  # training a published recipe: cliprepro.launching
        from cliprepro.launching import cmd_train

        if not args.train:
            raise InputError("--launcher", "--train", "--launcher and --cluster go with --train (a published recipe)")
        return cmd_train(args, layout)

    if args.suite == "all" and args.claim:
        raise InputError("--claim", "--claim", "names claims of one suite: run that suite (`cliprepro list` "
                         "shows each claim's suite)")
    names = layout.suite_names() if args.suite == "all" else [args.suite]
    out = out_folder(args.out, "--out") if args.out else None
    if out is None and args.suite == "all" and args.scale == "ci":
        out = layout.build  # CI: every record under build/, architecture checks included
    scales = {}
    for name in names:  # every suite's scale is decided (and refused) before anything runs
        suite, _ = layout.load(name)
        scales[name] = suite.ci_scale if args.scale == "ci" else args.scale
        if scales[name] != "auto":  # the one check of a requested scale (execute makes it again)
            try:
                pick_scale(suite, scales[name], cuda=False)
            except InputError as exc:
                hint = " (`--scale ci` runs each suite at its CI scale)" if args.suite == "all" else ""
                raise InputError(exc.path, exc.field, exc.problem + hint) from None
    status, folders, skipped, failures = 0, set(), [], []
    kwargs = dict(dry_run=args.dry_run, claims=args.claim, out=out, control=args.negative_control)
    if args.suite == "all" and not args.dry_run and not args.negative_control:  # training suites at once
        from cliprepro.batch import run_suites

        outcomes = run_suites(layout, names, scales, **kwargs)
    else:
        outcomes = (execute(layout, name, scale=scales[name], **kwargs) for name in names)
    for outcome in outcomes:
        if isinstance(outcome, str):  # the training suites' runtime, judged together (cliprepro.batch)
            if outcome:
                print(f"\nerror: {outcome}")
                status, failures = 1, failures + [f"runtime: {outcome}"]
            continue
        name = outcome.record.suite
        if args.dry_run:
            print(outcome.plan_text)
            continue
        _print_outcome(outcome)
        status = max(status, _outcome_status(outcome))
        failures += _why_failed(outcome)
        folders.add(outcome.path.parent)
        skipped += [f"{name}/{x.claim}" for x in outcome.record.results
                    if x.role == "gate" and x.verdict == "skipped"]
    for folder in sorted(folders):  # re-render the reports beside the records just written
        report_dir = render_into(layout, None if folder == layout.results else folder.parent)
        print(f"report: {report_dir / 'README.md'}")
    if skipped:  # a skipped gate is not a pass (exit status 1): say which, at the very end
        print(f"\n{len(skipped)} gates skipped: {', '.join(skipped)} (each record says what to provide)")
    if failures and len(names) > 1:  # one suite's table above already says it
        print(f"\nexit status 1 from {len(failures)} result(s):\n" + "\n".join(f"  {f}" for f in failures))
    return status


def cmd_calibrate(args, layout: Layout) -> int:
    from cliprepro.calibration import apply, draw_seed_base, runs_needed
    from cliprepro.provenance import git_state
    from cliprepro.runflow import execute

    suite, _ = layout.load(args.suite)
    if "proxy" not in suite.scales:
        raise InputError(layout.suites / f"{args.suite}.yaml", "scales", "calibration needs a proxy scale")
    if args.runs is not None and args.runs < 3:
        raise InputError("--runs", "--runs", "at least 3 (5 where a run takes under a minute)")
    if args.reapply:  # the rules changed, not the measurements: recompute from the cited records
        from cliprepro.calibration import reapply

        exp, problems = reapply(layout, args.suite)
        _print_calibrated(exp, problems)
        return 1 if problems else 0
    git = git_state(layout.root)
    if not git["commit"] or git["dirty"] is not False:
        print("error: calibration needs a clean tree at a known commit (changes under results/, expected/ "
              "and reports/ aside): commit or stash the rest first", file=sys.stderr)
        return 2
    if suite.runner == "train":
        from runners.training import fingerprint

        with progress.unit("training-path fingerprint (reference training)", None, "run"):
            value, _losses = fingerprint.compute()
        if value != fingerprint.COMMITTED:
            print(f"error: the training path's fingerprint is {value}, not the committed "
                  f"{fingerprint.COMMITTED}: training changed. Review the change, set COMMITTED in "
                  "runners/training/fingerprint.py and recalibrate every training suite", file=sys.stderr)
            return 1
    seed_base = draw_seed_base()
    fresh = layout.build / f"calibration-{seed_base}"  # its own stage cache: every stage trained here
    fresh.mkdir(parents=True)
    (layout.build / "data").mkdir(parents=True, exist_ok=True)
    (fresh / "data").symlink_to((layout.build / "data").resolve())  # data are a pure function of their spec
    ids, runs, i = [], args.runs or 3, 0
    try:
        while i < runs:
            with progress.scope(f"calibration run {i + 1}"):
                outcome = execute(layout, args.suite, scale="proxy", record_type="calibration",
                                  calibration=(seed_base, i), build=fresh)
            if outcome.record.status != "completed":
                print(f"calibration run {i + 1} failed: {outcome.record.message}", file=sys.stderr)
                return 1
            if i == 0:  # docs/design.md: >= 5 runs where a run costs under a minute, else >= 3
                runs = max(runs, runs_needed(outcome.record.timings["wall_s"]))
            ids.append(outcome.record_id)
            i += 1
            print(f"calibration run {i}/{runs}: {outcome.path}")
        control_ids = {}  # each gate's control, once, on run 1's models (its seeds, this cache)
        _, expected = layout.load(args.suite)
        for control in sorted({e.negative_control for e in expected.entries
                               if e.kind == "calibrated_effect" and e.negative_control}):
            with progress.scope(f"calibration control {control}"):
                outcome = execute(layout, args.suite, scale="proxy", record_type="calibration", control=control,
                                  calibration=(seed_base, 0), build=fresh)
            if outcome.record.status != "completed":
                print(f"control {control} failed: {outcome.record.message}", file=sys.stderr)
                return 1
            control_ids[control] = outcome.record_id
            print(f"calibration control {control}: {outcome.path}")
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
    exp, problems = apply(layout, args.suite, ids, control_ids)
    _print_calibrated(exp, problems)
    return 1 if problems else 0


def _print_calibrated(exp, problems: list[str]) -> None:
    from cliprepro.claims import pass_probability

    for e in exp.entries:
        if e.kind == "calibrated_effect":
            p = pass_probability(e)
            print(f"{e.claim}: value {e.value} spread {e.calibration_spread} half-width "
                  f"{e.planned_halfwidth} seed spread {e.seed_spread.sd if e.seed_spread else '—'} "
                  f"from {len(e.calibration)} records; control {e.control_calibration.value if e.control_calibration else '—'}; "
                  f"kept fraction {e.kept_fraction}: P(pass) {p.honest_pass:.4f}, P(control fails) "
                  f"{p.control_fails:.4f}" if p else "")
    for p in problems:
        print(f"problem: {p}", file=sys.stderr)


def cmd_list(args, layout: Layout) -> int:
    from cliprepro.check import record_problems
    from cliprepro.ledger import rejudge
    from cliprepro.report import load_records

    loaded = {n: layout.load(n) for n in layout.suite_names()}  # each suite read once
    suites = {n: suite for n, (suite, _) in loaded.items()}
    expected = {n: exp for n, (_, exp) in loaded.items()}
    records, _ = load_records([layout.results, layout.build / "results"])
    latest = {}
    for rid, r in sorted(records, key=lambda x: str(x[1].provenance.get("started_utc"))):
        if r.record_type != "run" or r.suite not in suites:
            continue
        # today's verdict of the stored measurement, marked when the leaderboard would not count it
        # (stale entry, dirty tree, older suite version, ...: `cliprepro check` says why)
        why, results = rejudge(r)
        counted = not record_problems(r, suites, expected)
        for x in results if why is None else r.results:
            latest[(r.suite, x.claim, x.scale)] = (x.verdict if why is None else "error") + ("" if counted else " *")
    rows = []
    for name, (suite, exp) in loaded.items():
        for e in exp.entries:
            rows.append([name, e.claim, e.scale, e.role, ",".join(sorted(suite.scales)),
                         latest.get((name, e.claim, e.scale), "—")])
    print(tabulate(rows, ["suite", "claim", "scale", "gate/finding", "suite scales", "latest verdict"]))
    if any(v.endswith(" *") for v in latest.values()):
        print("\n* the newest record is not counted by the leaderboard (a dirty tree, a stale entry, ...): "
              "`cliprepro check RECORD` says why")
    return 0


def cmd_validate(args, layout: Layout) -> int:
    from cliprepro.validation import validate_all

    problems = validate_all(layout)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        return 2
    from cliprepro.validation import gate_probabilities

    print(f"ok: {len(layout.suite_names())} suites and their expected files are valid")
    rows, whole, ledger = gate_probabilities(layout)
    print("\nGates: probability that an honest rerun passes and that the negative control fails "
          "(normal model, spread at its 95% upper confidence bound)")
    print(tabulate(rows, ["suite", "gate", "P(pass)", "P(control fails)", "from"], tablefmt="simple"))
    print("\nPer suite at its CI scale")
    print(tabulate(ledger, ["suite", "seeds", "runtime_s (declared)", "P(all gates pass)", "min P(control fails)"],
                   tablefmt="simple"))
    print(f"\nP(a CI run passes every gate) >= {whole:.4f} (product over gates)")
    return 0


def cmd_docs(args, layout: Layout) -> int:
    from cliprepro.claimsdoc import render
    from cliprepro.record import atomic_write_text

    suites = {n: layout.load(n)[0] for n in layout.suite_names()}
    expected = {n: layout.load(n)[1] for n in layout.suite_names()}
    path = layout.root / "docs" / "claims.md"
    atomic_write_text(path, render(suites, expected))
    print(f"wrote {path}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cliprepro", description=__doc__.split("\n")[0])
    root = argparse.ArgumentParser(add_help=False)  # --root before or after the command
    root.add_argument("--root", default=argparse.SUPPRESS,
                      help="repo root with suites/ and expected/ (default: working directory)")
    p.add_argument("--root", help="repo root with suites/ and expected/ (default: working directory)")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", parents=[root], help="suites, claims, scales, gate or finding, latest verdicts")
    sub.add_parser("validate", parents=[root], help="check every file in suites/ and expected/, "
                   "print each gate's pass probability")
    r = sub.add_parser("run", parents=[root], help="run a suite (or 'all'), judge its claims, write a record and reports")
    r.add_argument("suite", help="suite name, or 'all'")
    r.add_argument("--scale", default="auto", choices=["auto", "ci", "proxy", "gpu", "paper"],
                   help="auto: architecture suites at their own scale; gpu with CUDA; else proxy. "
                        "ci: each suite at its CI scale (proxy, or paper for exact architecture checks)")
    r.add_argument("--dry-run", action="store_true", help="print the plan, run nothing")
    r.add_argument("--claim", action="append", default=[], help="only this claim id (repeatable)")
    r.add_argument("--out", help="write records to OUT/results and reports to OUT/reports")
    r.add_argument("--negative-control", help="run the named negative control (its gates must fail)")
    r.add_argument("--train", action="store_true", help="train the published recipe (--scale paper) with --launcher")
    r.add_argument("--launcher", choices=["local", "torchrun", "slurm", "deepspeed"],
                   help="how --train runs: one process, torchrun (one node), an sbatch script, DeepSpeed")
    r.add_argument("--cluster", help="cluster config YAML (nodes, gpus_per_node, partition, ...; $CLIPREPRO_CLUSTER)")
    r.add_argument("--job", help="with --launcher slurm: follow this submitted job (no new submission), then collect")
    c = sub.add_parser("calibrate", parents=[root], help="run the proxy scale N times and set the gates in expected/")
    c.add_argument("suite")
    c.add_argument("--runs", type=int, help="number of runs (at least 5 if a run is under 1 min, else 3)")
    c.add_argument("--reapply", action="store_true",
                   help="run nothing: recompute the gates' fields from the records they cite (after a rule change)")
    ch = sub.add_parser("check", parents=[root], help="check records before submitting them (what report rejects)")
    ch.add_argument("records", nargs="+", help="record JSON files")
    ex = sub.add_parser("export", parents=[root], help="clip_benchmark result JSON of every zero-shot evaluation")
    ex.add_argument("out", help="folder to write the JSON files into")
    ex.add_argument("--build", help="also read BUILD/results (proxy / CI records)")
    rr = sub.add_parser("rerun", parents=[root], help="re-run a record's suite with its stored configuration")
    rr.add_argument("record")
    rr.add_argument("--dry-run", action="store_true", help="say what differs and print the plan, run nothing")
    cp = sub.add_parser("compare", parents=[root], help="two records of one suite side by side, with paired tests")
    cp.add_argument("a")
    cp.add_argument("b")
    sub.add_parser("docs", parents=[root], help="rewrite docs/claims.md from suites/ and expected/")
    rep = sub.add_parser("report", parents=[root], help="render reports/ from the committed records in results/")
    rep.add_argument("--build", help="also read BUILD/results and write to BUILD/reports")
    return p


COMMANDS = {"list": cmd_list, "validate": cmd_validate, "run": cmd_run, "calibrate": cmd_calibrate,
            "report": cmd_report, "docs": cmd_docs, "check": cmd_check, "export": cmd_export,
            "rerun": cmd_rerun, "compare": cmd_compare}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        layout = Layout.find(args.root)
        code = COMMANDS[args.command](args, layout)
        sys.stdout.flush()  # here, not at exit, where a closed pipe could no longer be caught
        return code
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (`cliprepro list | head -1`): not an error to trace
        _stdout_to_devnull()
        return 141  # 128 + SIGPIPE, what a shell reports for a command its pipe's reader ended


def _stdout_to_devnull() -> None:
    """Python's recipe for a closed pipe: point stdout at /dev/null, so the flush at exit does not
    raise a second BrokenPipeError. Records and checkpoints are written atomically, so a run cut
    here keeps what it wrote."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by something without a descriptor
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
