"""One open_clip_train stage as its own process: its arguments, its cache key, its progress.

The trainer is runners.upstream.openclip_main.main, the same function torchrun runs at paper
scale. Here it runs in a process forked from a forkserver that has imported torch, open_clip and
open_clip_train once (multiprocessing's forkserver with preload), so a stage does not pay ~4 s
of imports; the process is otherwise fresh (nothing has run in the server), writes its output to
the stage's trainer.log, and dies with cliprepro (PR_SET_PDEATHSIG). As with any forkserver or
spawn child, the trainer imports the caller's main module: a script that calls run_stage keeps its
work under `if __name__ == "__main__":`.
"""
from __future__ import annotations

import ctypes
import faulthandler
import hashlib
import json
import multiprocessing
import os
import shutil
import signal
import sys
from pathlib import Path

from cliprepro import progress
from cliprepro.errors import env_number
from runners.schema.train_params import Stage, TrainParams as Params
from runners.training import fingerprint
from runners.training import sources
from runners.training.sources import Source
from runners.upstream import steplog
from runners.upstream.divergence import DIVERGED, Diverged

ROOT = Path(__file__).resolve().parent.parent.parent
STAGE_DIR = "stage"  # open_clip_train --name inside each stage's cache folder
PROBE = "first_batch_tokens.json"
STEP_LOG = "step_log.json"  # data wait vs step time per epoch, and the bare step (runners.upstream.steplog)
TRAINER_LOG = "trainer.log"  # the trainer's stdout and stderr
PRELOAD = ["torch", "open_clip", "open_clip_train.main", "webdataset", "clip_benchmark.datasets.builder",
           "clip_benchmark.metrics.zeroshot_classification", "runners.upstream.openclip_main",
           "runners.upstream.steplog", "runners.model.masks", "runners.zeroshot",
           "sklearn.metrics"]  # the evaluator's balanced accuracy: 0.4 s of import per evaluation otherwise


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def stage_key(params: Params, stage: Stage, source: Source, seed: int, threads: int = 1) -> str:
    """Cache key of a stage's training: the data, the seed, the common settings, the trainer's
    thread count (float sums depend on it) and every stage of its init chain (not names, so suites
    that define the same stage share one trained model)."""
    chain = []
    for s in _chain(params, stage):
        chain.append(s.model_dump(exclude={"name", "n_seeds", "init"}))
        teacher = teacher_of(params, s)
        if teacher is not None:  # a MIM stage (and all that start from it) depends on its teacher's training
            chain.append({"teacher": stage_key(params, teacher, source, seed, threads)})
    common = params.model_dump(include={"beta1", "beta2", "eps", "wd", "workers", "precision"})
    if any(s.optimizer == "lamb" for s in _chain(params, stage)):
        common["lamb"] = params.lamb.model_dump(exclude={"noted"})
    # the training path's fingerprint, not a hand-bumped version: a change to what training does
    # changes it (runners.training.fingerprint), so no stage cached before is reused
    return _key(fingerprint.COMMITTED, sources.stage_train_key(source, params, stage), seed, common, threads, *chain)


def teacher_of(params: Params, stage: Stage) -> Stage | None:
    """A MIM stage's teacher stage (None: no MIM, or an untrained teacher)."""
    if stage.mim is None or stage.mim.teacher == "random":
        return None
    return next(s for s in params.stages if s.name == stage.mim.teacher)


def _chain(params: Params, stage: Stage) -> list[Stage]:
    """The stage and every stage it starts from, first one first."""
    chain: list[Stage] = []
    current: Stage | None = stage
    while current is not None:
        chain.insert(0, current)
        current = params.init_of(current)
    return chain


def stage_argv(params: Params, stage: Stage, source: Source, logs: Path, seed: int,
               init: Path | None) -> list[str]:
    """open_clip_train arguments for one stage (the procedural shards' sizes.json gives their sample
    count; own data say theirs), then ours for runners.upstream.openclip_main (image / text masks,
    the first-batch token probe)."""
    lamb = params.lamb if stage.optimizer == "lamb" else None
    wd, (beta1, beta2), eps = ((lamb.weight_decay, lamb.betas, lamb.eps) if lamb
                               else (params.wd, (params.beta1, params.beta2), params.eps))
    argv = ["--train-data", source.train_pattern(stage.train_shards),
            "--dataset-type", "webdataset", "--model", stage.model, "--epochs", str(stage.epochs),
            "--batch-size", str(stage.batch_size), "--lr", str(stage.lr), "--warmup", str(stage.warmup),
            "--wd", str(wd), "--beta1", str(beta1), "--beta2", str(beta2),
            "--eps", str(eps), "--workers", str(params.workers), "--seed", str(seed + stage.seed_offset),
            "--logs", str(logs), "--name", STAGE_DIR, "--save-frequency", "1", "--precision", params.precision,
            "--report-to", "", "--log-every-n-steps", "1000000"]
    if stage.image_size:
        argv += ["--force-image-size", str(stage.image_size)]
    if stage.patch_dropout is not None:
        argv += ["--force-patch-dropout", str(stage.patch_dropout)]
    if stage.context_length:
        argv += ["--force-context-length", str(stage.context_length)]
    if stage.train_num_samples or source.own:
        argv += ["--train-num-samples", str(source.epoch_samples(stage))]
    if init is not None:
        argv += ["--pretrained", str(init)]
    if stage.mask_kind != "random":
        argv += ["--cliprepro-mask-kind", stage.mask_kind]
    if stage.text_mask != "truncate":
        argv += ["--cliprepro-text-mask", stage.text_mask]
    if params.max_loss is not None:
        argv += ["--cliprepro-max-loss", str(params.max_loss)]
    if lamb:  # timm's Lamb; what open_clip_train does not pass it goes through our wrapper
        argv += ["--opt", "timm/lamb", "--cliprepro-optimizer-kwargs", json.dumps(lamb.timm_kwargs())]
    if stage.attention != "default":
        argv += ["--cliprepro-attention", stage.attention]
    return argv + ["--cliprepro-token-probe", str(logs / PROBE), "--cliprepro-step-log", str(logs / STEP_LOG)]


# Looked up at import, not in the forked trainer, where a loader lock held by another thread could hang
_PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def die_with_parent() -> None:
    """In the trainer process: SIGTERM it when its parent (the forkserver, which exits with
    cliprepro) dies (Linux), so a cliprepro killed alone does not leave a trainer writing into the
    cache (it resumes on the next run)."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def steps_planned(stage: Stage, source: Source) -> int:
    return stage.epochs * -(-source.epoch_samples(stage) // stage.batch_size)


def run_stage(params: Params, stage: Stage, source: Source, logs: Path, seed: int, init: Path | None,
              bare_step_s: float = 0.0, extra_argv: list[str] | None = None,
              env: dict[str, str] | None = None) -> tuple[Path, bool]:
    """The stage's final checkpoint, training (or resuming) only what is missing, and whether
    this call trained (False: the cached stage was reused whole). `extra_argv` goes last to
    open_clip_train (it overrides), `env` adds to the trainer's environment."""
    ckpts = logs / STAGE_DIR / "checkpoints"
    final = ckpts / f"epoch_{stage.epochs}.pt"
    if final.exists():
        return final, False
    argv = stage_argv(params, stage, source, logs, seed, init) + list(extra_argv or [])
    if bare_step_s:
        argv += ["--cliprepro-bare-step-s", str(bare_step_s)]
    for partial in ckpts.glob("*.tmp"):  # a save cut off by a kill: never a checkpoint
        partial.unlink()
    done = sorted(int(p.stem.split("_")[1]) for p in ckpts.glob("epoch_*.pt"))
    if done:
        argv += ["--resume", "latest"]
        _trim_step_log(logs / STEP_LOG, done[-1])
    else:
        shutil.rmtree(logs, ignore_errors=True)  # killed before its first checkpoint: start clean
    logs.mkdir(parents=True, exist_ok=True)
    total = steps_planned(stage, source)
    with progress.unit(f"train {stage.name} seed {seed}", total, "step") as bar:
        returncode = in_process(_trainer, (argv,), logs / TRAINER_LOG, env, lambda: bar.set(_steps_done(logs)))
    if returncode != 0 and final.exists() and _steps_done(logs) >= total:
        # Seen once in CI: exit 255 after the final checkpoint (atomic) and every step were written,
        # with nothing in the trainer's log; cause not found. The stage is whole, so it is kept, and
        # the exit code is said, never hidden.
        print(f"warning: stage {stage.name} (seed {seed}) exited with {returncode} after its final "
              f"checkpoint and all {total} steps; the stage is kept (log: {logs / TRAINER_LOG})", file=sys.stderr)
        return final, True
    if returncode != 0 or not final.exists():
        lines = [x for x in (logs / TRAINER_LOG).read_text().splitlines() if x.strip() and x[:2] not in ("I1", "W1")]
        if returncode == DIVERGED:  # an error with where it diverged, never a result to judge
            said = next((x for x in reversed(lines) if "diverged" in x), "training diverged")
            raise Diverged(f"stage {stage.name} (seed {seed}) stopped: {said.removeprefix('error: ')}")
        tail = "\n".join(lines[-5:])  # the exception, not torch's dynamo statistics
        raise RuntimeError(f"stage {stage.name} (seed {seed}) failed with exit {returncode}: {tail}")
    return final, True


def _steps_done(logs: Path) -> int:
    try:
        return int(json.loads(steplog.progress_path(logs / STEP_LOG).read_text())["steps"])
    except (OSError, ValueError, KeyError):
        return 0


def _trim_step_log(path: Path, epochs: int) -> None:
    """Keep the epochs the resumed checkpoint holds (one finished after it is trained again)."""
    if path.exists():
        data = json.loads(path.read_text())
        data["epochs"] = data["epochs"][:epochs]
        steplog.write_atomic(path, data)  # a kill here must not leave half a log for the next resume




_CONTEXT: multiprocessing.context.BaseContext | None = None


def _trainers() -> multiprocessing.context.BaseContext:
    """The forkserver context, its server preloaded with the trainer's imports (started once)."""
    global _CONTEXT
    if _CONTEXT is None:
        if "forkserver" not in multiprocessing.get_all_start_methods():
            _CONTEXT = multiprocessing.get_context("spawn")  # no fork (not Linux): plain fresh processes
        else:
            _CONTEXT = multiprocessing.get_context("forkserver")
            _CONTEXT.set_forkserver_preload(PRELOAD)
    return _CONTEXT


def in_process(target, args: tuple, log: Path, env: dict[str, str] | None, poll=None) -> int | None:
    """Run target(*args) in a fresh process forked from the preloaded server, its output in `log`,
    the current environment plus `env`; `poll()` is called twice a second meanwhile. Its exit code."""
    environ = {**os.environ, **(env or {})}  # as a subprocess would inherit it, now
    proc = _trainers().Process(target=_child, args=(target, args, str(log), environ))
    proc.start()
    while proc.exitcode is None:
        proc.join(timeout=0.5)
        if poll is not None:
            poll()
    return proc.exitcode


def _child(target, args: tuple, log: str, environ: dict[str, str]) -> None:
    """In the forked process: output to the log, the caller's environment (a thread count applied
    to torch too: it is imported already), the start method a plain process has, then the work."""
    die_with_parent()
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    faulthandler.enable()  # a native crash (a signal) leaves its Python stack in the log, not an empty one
    os.environ.clear()
    os.environ.update(environ)
    os.chdir(ROOT)
    # a forkserver child inherits that start method; open_clip_train's loader workers get what a
    # plain process has (fork on Linux), as under torchrun
    multiprocessing.set_start_method(multiprocessing.get_all_start_methods()[0], force=True)
    if "OMP_NUM_THREADS" in environ:
        import torch

        torch.set_num_threads(int(environ["OMP_NUM_THREADS"]))
    code = target(*args)
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(code or 0)  # multiprocessing turns it into the process's exit code


def _trainer(argv: list[str]) -> int:
    from runners.upstream.openclip_main import main

    return main(argv)


def trainer_jobs() -> tuple[int, int]:
    """(processes at once, threads each): on a small CPU two one-thread trainers train ~1.5x more
    samples per second than one two-thread trainer (docs/design.md); with a GPU (the trainer uses
    it when one is visible) one at a time, each with the GPU to itself. $CLIPREPRO_TRAIN_JOBS overrides."""
    import torch

    cores = os.cpu_count() or 1
    alone = torch.cuda.is_available() or cores < 2
    jobs = env_number("CLIPREPRO_TRAIN_JOBS", "1" if alone else "2")  # cliprepro run checks it first
    return jobs, max(1, cores // jobs)


def evaluate_once(evaluator, params: Params, stage: Stage, ckpt: Path, source: Source, out: Path, what: str) -> dict:
    """The evaluator's JSON for one checkpoint, written to `out` by its own process once (kept
    beside the stage: a later run reads it)."""
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        log = out.parent / "eval.log"
        with progress.unit(f"evaluate {stage.name} {what}", 1, "checkpoint") as bar:
            code = in_process(evaluator, (params, stage, ckpt, source, out), log, {"OMP_NUM_THREADS": str(trainer_jobs()[1])})
            if code != 0 and out.exists():
                # as a stage's exit after its final checkpoint (run_stage): the scores are written
                # atomically at the very end, so they are whole. Seen once in CI: 255, the status
                # multiprocessing's forkserver reports when it lost the child's, with an empty log.
                print(f"warning: evaluation of {stage.name} ({what}) exited with {code} after writing its "
                      f"scores; they are kept (log: {log})", file=sys.stderr)
            elif code != 0 or not out.exists():
                tail = "\n".join(log.read_text().splitlines()[-5:]) or "(its log is empty)"
                raise RuntimeError(f"evaluation of {stage.name} ({what}) failed with exit {code}, no scores "
                                   f"written: {tail}")
            bar.update()
    return json.loads(out.read_text())
