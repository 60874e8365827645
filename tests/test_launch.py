"""Launchers: the published CLIPA-L/16 recipe as torchrun / srun lines and an sbatch script, the
plan's batches, accumulation, GPU-hours and cost (pure), and the CLI's refusals."""
from __future__ import annotations

import shlex

import pytest

from cliprepro.cli import main
from cliprepro.errors import InputError
from cliprepro.layout import Layout
from cliprepro.runflow import runner_params
from runners.training import launch
from tests.conftest import REPO


def _recipe():
    layout = Layout.find(str(REPO))
    suite, _ = layout.load("clipa_l16")
    return runner_params(layout, suite, "paper", None)[1]


def _flags(line: str) -> dict[str, str]:
    argv = shlex.split(line)
    return {a: b for a, b in zip(argv, argv[1:]) if a.startswith("--")}


def no_rate(stage, gpu):
    return None, "none measured"


class TestPublishedScripts:
    """open_clip docs/script_examples/clipa/vit_l16/i17_t16_{pretrain,finetune}.sh (docs/claims.md)."""

    def test_torchrun_lines_on_one_8_gpu_node(self):
        recipe, cluster = _recipe(), launch.Cluster()
        pre, ft = launch.commands("torchrun", recipe, cluster, launch.plan(recipe, cluster, no_rate))
        assert pre.startswith("torchrun --nnodes 1 --nproc_per_node 8 -m runners.upstream.openclip_main ")
        p, f = _flags(pre), _flags(ft)
        assert (p["--batch-size"], p["--lr"], p["--warmup"], p["--epochs"], p["--force-image-size"]) == (
            "4096", "0.001024", "1563", "6", "64")
        assert (f["--batch-size"], f["--lr"], f["--warmup"], f["--train-num-samples"]) == ("896", "2.24e-05", "3571", "131072000")
        assert f["--pretrained"] == "logs/pretrain/checkpoints/epoch_6.pt" and p["--beta2"] == "0.95"
        assert "--accum-freq" not in p and p["--resume"] == "latest"

    def test_sbatch_script_for_two_nodes(self):
        recipe = _recipe()
        cluster = launch.Cluster(nodes=2, gpus_per_node=4, partition="gpu", account="proj", time_limit="2-00:00:00",
                                 activate="source /opt/venv/bin/activate")
        plans = launch.plan(recipe, cluster, no_rate)
        script = launch.sbatch_script("clipa_l16", recipe, cluster, plans)
        for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=4", "#SBATCH --gpus-per-node=4", "#SBATCH --requeue",
                     "#SBATCH --partition=gpu", "#SBATCH --account=proj", "#SBATCH --time=2-00:00:00",
                     "source /opt/venv/bin/activate"):
            assert line in script.splitlines()
        sruns = [x for x in script.splitlines() if x.startswith("srun ")]
        assert len(sruns) == 2 and _flags(sruns[0])["--batch-size"] == "4096"  # 32,768 over 8 GPUs

    @pytest.mark.parametrize("nodes, gpus_per_node", [(1, 1), (1, 2), (1, 4), (2, 8), (4, 8)])
    def test_the_global_batch_is_the_papers_on_any_cluster(self, nodes, gpus_per_node):
        """The recipe was published for 8 GPUs; on another count the per-GPU batch follows the cluster."""
        recipe, cluster = _recipe(), launch.Cluster(nodes=nodes, gpus_per_node=gpus_per_node)
        lines = launch.commands("torchrun", recipe, cluster, launch.plan(recipe, cluster, no_rate))
        for line, stage in zip(lines, recipe.stages):
            assert int(_flags(line)["--batch-size"]) * nodes * gpus_per_node == stage.global_batch

    def test_deepspeed_is_refused_for_open_clip_train_recipes(self):
        recipe, cluster = _recipe(), launch.Cluster()
        with pytest.raises(InputError, match="DeepSpeed loop"):
            launch.commands("deepspeed", recipe, cluster, launch.plan(recipe, cluster, no_rate))


class TestPlan:
    @pytest.mark.parametrize("per_gpu, limit, want", [(4096, None, 1), (4096, 4096, 1), (4096, 1024, 4),
                                                      (896, 500, 2), (896, 100, 14), (7, 3, 7)])
    def test_accumulation_keeps_the_global_batch(self, per_gpu, limit, want):
        k = launch.accumulation(per_gpu, limit)
        assert k == want and per_gpu % k == 0 and (limit is None or per_gpu // k <= limit)

    def test_memory_limit_adds_accum_freq(self):
        recipe, cluster = _recipe(), launch.Cluster(max_batch_per_gpu=1024)
        pre = launch.commands("local", recipe, cluster, launch.plan(recipe, cluster, no_rate))[0]
        assert (_flags(pre)["--batch-size"], _flags(pre)["--accum-freq"]) == ("1024", "4")

    def test_gpu_hours_and_cost_from_a_measured_rate(self):
        recipe = _recipe()
        cluster = launch.Cluster(usd_per_gpu_hour=2.0, price_source="test price")
        plans = launch.plan(recipe, cluster, lambda stage, gpu: (1000.0, ""))
        pre, ft = plans
        assert pre.samples == 6 * recipe.epoch_samples and pre.gpu_hours == pytest.approx(pre.samples / 1000 / 3600)
        assert ft.samples == 131_072_000
        text = launch.describe(recipe, cluster, plans)
        total = pre.gpu_hours + ft.gpu_hours
        assert f"${total * 2:,.0f} at $2/GPU-hour (test price)" in text

    def test_unknown_rate_says_why(self):
        recipe, cluster = _recipe(), launch.Cluster()
        text = launch.describe(recipe, cluster, launch.plan(recipe, cluster, no_rate))
        assert "GPU-hours unknown (none measured)" in text and "total: unknown" in text

    def test_indivisible_batch_is_refused(self):
        with pytest.raises(InputError, match="do not divide"):
            launch.plan(_recipe(), launch.Cluster(gpus_per_node=3), no_rate)


class TestCli:
    def test_dry_run_prints_script_and_plan(self, capsys, tmp_path):
        cfg = tmp_path / "cluster.yaml"
        cfg.write_text("nodes: 2\ngpus_per_node: 8\npartition: a100\nusd_per_gpu_hour: 1.5\nprice_source: test\n")
        assert main(["--root", str(REPO), "run", "clipa_l16", "--scale", "paper", "--train", "--launcher", "slurm",
                     "--cluster", str(cfg), "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert "#SBATCH --nodes=2" in out and "plan: 2 node(s) x 8 A100 = 16 GPUs" in out

    @pytest.mark.parametrize("argv, field", [
        (["--train", "--launcher", "slurm", "--dry-run"], "scales"),  # not --scale paper
        (["--scale", "paper", "--train", "--dry-run"], "--launcher"),  # never picked implicitly
        (["--scale", "paper", "--train", "--launcher", "torchrun"], "train_data"),  # a real run needs your shards
    ])
    def test_refusals_are_exit_2(self, argv, field, capsys):
        assert main(["--root", str(REPO), "run", "clipa_l16", *argv]) == 2
        assert field in capsys.readouterr().err

    def test_a_bad_cluster_file_names_the_field(self, capsys, tmp_path):
        cfg = tmp_path / "cluster.yaml"
        cfg.write_text("nodes: 2\ngpu_per_node: 8\n")
        assert main(["--root", str(REPO), "run", "clipa_l16", "--scale", "paper", "--train", "--launcher", "slurm",
                     "--cluster", str(cfg), "--dry-run"]) == 2
        assert "gpu_per_node: unknown key" in capsys.readouterr().err
