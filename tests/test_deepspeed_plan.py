"""The DeepSpeed runner: EVA02-CLIP-B/16's published recipe as deepspeed_config.json and launch lines
(against EVA-CLIP's README command and shipped config, docs/claims.md), parsed by DeepSpeed itself;
findings skipped saying what they need; the launcher's refusals."""
from __future__ import annotations

import shlex

import pytest

from cliprepro.cli import main
from cliprepro.layout import Layout
from cliprepro.runflow import runner_params
from runners import deepspeed as ds
from runners.schema.metric_names import declared
from tests.conftest import REPO


def _recipe():
    layout = Layout.find(str(REPO))
    suite, _ = layout.load("eva_clip_ablation")
    return runner_params(layout, suite, "paper", None)[1]


class TestDeepSpeedConfig:
    def test_the_shipped_config_fields(self):
        """EVA-CLIP rei/training/deepspeed_config.json: LAMB betas [0.9, 0.999], eps 1e-8, max_coeff 10,
        min_coeff 0.01, clipping 5.0, ZeRO stage 1 with bucket 5e8, fp16 at initial_scale_power 16."""
        c = ds.deepspeed_config(_recipe())
        lamb = c["optimizer"]["params"]
        assert c["optimizer"]["type"] == "Lamb"
        assert (lamb["betas"], lamb["eps"], lamb["max_coeff"], lamb["min_coeff"]) == ([0.9, 0.999], 1e-8, 10.0, 0.01)
        assert c["gradient_clipping"] == 5.0
        assert c["zero_optimization"] == {"stage": 1, "reduce_bucket_size": 500_000_000}
        assert (c["fp16"]["enabled"], c["fp16"]["initial_scale_power"], c["bf16"]["enabled"]) == (True, 16, False)
        assert (c["train_batch_size"], c["train_micro_batch_size_per_gpu"]) == (131_072, 2048)  # 8 nodes x 8 x 2048

    def test_bf16_switches_the_config_and_the_flag(self):
        r = _recipe().model_copy(update={"precision": "bf16"})
        c = ds.deepspeed_config(r)
        assert (c["fp16"]["enabled"], c["bf16"]["enabled"]) == (False, True)
        assert "--precision bf16" in ds.launch_line(r)

    def test_deepspeed_reads_it(self):
        """DeepSpeed's own config parser: batch = micro x accumulation x world (64 steps of
        accumulation on one process stand for 64 GPUs)."""
        from deepspeed.runtime.config import DeepSpeedConfig

        c = DeepSpeedConfig(ds.deepspeed_config(_recipe()), mpu=None)
        assert (c.train_batch_size, c.train_micro_batch_size_per_gpu, c.gradient_accumulation_steps) == (131_072, 2048, 64)
        assert (c.zero_optimization_stage, c.optimizer_name) == (1, "lamb")


class TestLaunchLine:
    README_FLAGS = ["--train-num-samples 40000000", "--dataset-resampled", "--warmup 2000", "--lr 0.0005",
                    "--wd 0.05", "--visual-wd 0.05", "--text-wd 0.05", "--ld 1", "--grad-clip-norm 5",
                    "--smoothing 0.", "--seed 4096", "--gather-with-grad", "--grad-checkpointing", "--local-loss",
                    "--force-custom-clip", "--optimizer lamb", "--zero-stage 1", "--enable-deepspeed"]

    def test_every_flag_of_the_readme_command(self):
        line = ds.launch_line(_recipe())
        missing = [f for f in self.README_FLAGS if f" {f}" not in line]
        assert missing == []

    def test_the_b16_row_of_the_table(self):
        """eva_cmd_b16: 8 nodes, per-GPU 2048, 200 epochs, visual / text lr 2e-4 / 2e-5, ld 0.75 / 0.75, no patch dropout."""
        argv = shlex.split(ds.launch_line(_recipe()).replace("$", ""))
        flags = {a: b for a, b in zip(argv, argv[1:]) if a.startswith("--")}
        assert "--nnodes=8" in argv and "--nproc_per_node=8" in argv
        assert (flags["--batch-size"], flags["--epochs"], flags["--visual-lr"], flags["--text-lr"]) == ("2048", "200", "0.0002", "2e-05")
        assert (flags["--visual-ld"], flags["--text-ld"]) == ("0.75", "0.75") and "--force-patch-dropout" not in flags

    def test_node_rank_is_left_to_the_shell(self):
        assert "--node_rank=$NODE_RANK" in ds.launch_line(_recipe())


class TestRun:
    def test_every_finding_skipped_saying_what_it_needs(self, tmp_path):
        out = ds.run(_recipe(), "paper", tmp_path)
        assert set(out.skip) == declared(_recipe()) and out.metrics == {}
        assert all("64 GPUs" in why and "training/main.py" in why for why in out.skip.values())


class TestCli:
    def test_dry_run_prints_the_config(self, capsys):
        assert main(["--root", str(REPO), "run", "eva_clip_ablation", "--scale", "paper", "--train",
                     "--launcher", "deepspeed", "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert '"train_batch_size": 131072' in out and "torch.distributed.launch" in out

    @pytest.mark.parametrize("argv, said", [
        (["--launcher", "slurm", "--dry-run"], "--launcher deepspeed"),
        (["--launcher", "deepspeed"], "--dry-run"),  # runs with EVA's trainer, never here
    ])
    def test_refusals(self, argv, said, capsys):
        assert main(["--root", str(REPO), "run", "eva_clip_ablation", "--scale", "paper", "--train", *argv]) == 2
        assert said in capsys.readouterr().err
