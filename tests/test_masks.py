"""CLIPA's grid and block masks: exact indices, equal token budgets, PatchSelect, install."""
from __future__ import annotations

import pytest
import torch
from open_clip.transformer import PatchDropout

from runners.model.masks import (PatchSelect, block_keep_indices, classify_kept, block_shape, grid_keep_indices, install,
                           kept_patches)
from runners.model.models import TokenProbe, build, model_config


def positional(batch: int, patches: int, width: int = 3) -> torch.Tensor:
    """x[b, i, d] = 1000 b + i + d / 8: every value says which sample and token it came from."""
    b = torch.arange(batch, dtype=torch.float64)[:, None, None]
    i = torch.arange(1 + patches, dtype=torch.float64)[None, :, None]
    d = torch.arange(width, dtype=torch.float64)[None, None, :]
    return 1000 * b + i + d / 8


def patch_ids(out: torch.Tensor) -> torch.Tensor:
    """Row-major patch index of every kept token (class token excluded), per sample."""
    return out[:, 1:, 0].remainder(1000).long() - 1


def is_block(idx: torch.Tensor, h: int, w: int, block: tuple[int, int]) -> bool:
    top, left = int(idx.min()) // w, int(idx.min()) % w
    return idx.tolist() == block_keep_indices(h, w, block, top, left).tolist()


class TestGridKeepIndices:
    @pytest.mark.parametrize("h,w,offset,expected", [
        (4, 4, (0, 0), [0, 2, 8, 10]),
        (4, 4, (0, 1), [1, 3, 9, 11]),
        (4, 4, (1, 0), [4, 6, 12, 14]),
        (4, 4, (1, 1), [5, 7, 13, 15]),
        (2, 2, (1, 1), [3]),
        (2, 4, (0, 1), [1, 3]),
        (4, 2, (1, 0), [2, 6]),
        (2, 6, (1, 0), [6, 8, 10]),
    ])
    def test_exact(self, h, w, offset, expected):
        assert grid_keep_indices(h, w, offset).tolist() == expected

    @pytest.mark.parametrize("h,w", [(2, 2), (4, 4), (6, 4), (8, 14), (16, 16)])
    @pytest.mark.parametrize("offset", [(0, 0), (0, 1), (1, 0), (1, 1)])
    def test_one_per_window(self, h, w, offset):
        idx = grid_keep_indices(h, w, offset)
        assert len(idx) == h * w // 4
        windows = [(int(i) // w // 2, int(i) % w // 2) for i in idx]
        assert sorted(windows) == [(r, c) for r in range(h // 2) for c in range(w // 2)]
        assert all((int(i) // w % 2, int(i) % w % 2) == offset for i in idx)
        assert idx.tolist() == sorted(idx.tolist())  # row-major

    @pytest.mark.parametrize("h,w", [(3, 4), (4, 5), (7, 7), (1, 2)])
    def test_odd_grid_raises(self, h, w):
        with pytest.raises(ValueError, match="divisible"):
            grid_keep_indices(h, w)

    def test_four_offsets_partition_the_grid(self):
        every = torch.cat([grid_keep_indices(6, 8, (a, b)) for a in (0, 1) for b in (0, 1)])
        assert sorted(every.tolist()) == list(range(48))


class TestBlockKeepIndices:
    @pytest.mark.parametrize("h,w,block,top,left,expected", [
        (4, 4, (2, 2), 1, 1, [5, 6, 9, 10]),
        (4, 4, (2, 2), 0, 0, [0, 1, 4, 5]),
        (4, 4, (2, 2), 2, 2, [10, 11, 14, 15]),
        (4, 4, (1, 4), 3, 0, [12, 13, 14, 15]),
        (4, 4, (4, 1), 0, 3, [3, 7, 11, 15]),
        (3, 5, (2, 3), 1, 2, [7, 8, 9, 12, 13, 14]),
        (4, 4, (4, 4), 0, 0, list(range(16))),
        (4, 4, (1, 1), 3, 3, [15]),
    ])
    def test_exact(self, h, w, block, top, left, expected):
        assert block_keep_indices(h, w, block, top, left).tolist() == expected

    @pytest.mark.parametrize("h,w,block,top,left", [
        (16, 16, (8, 8), 3, 5), (16, 16, (11, 12), 5, 4), (8, 12, (3, 7), 0, 5), (5, 5, (5, 2), 0, 3),
    ])
    def test_contiguous(self, h, w, block, top, left):
        idx = block_keep_indices(h, w, block, top, left)
        rows, cols = sorted({int(i) // w for i in idx}), sorted({int(i) % w for i in idx})
        assert rows == list(range(top, top + block[0]))
        assert cols == list(range(left, left + block[1]))
        assert len(idx) == block[0] * block[1] == len(set(idx.tolist()))

    @pytest.mark.parametrize("h,w,block,top,left", [
        (4, 4, (2, 2), 3, 0), (4, 4, (2, 2), 0, 3), (4, 4, (2, 2), -1, 0), (4, 4, (2, 2), 0, -1),
        (4, 4, (5, 1), 0, 0), (4, 4, (1, 5), 0, 0), (16, 16, (8, 8), 9, 9),
    ])
    def test_outside_grid_raises(self, h, w, block, top, left):
        with pytest.raises(ValueError, match="leaves"):
            block_keep_indices(h, w, block, top, left)


class TestBlockShape:
    @pytest.mark.parametrize("h,w,keep,shape", [
        (16, 16, 0.25, (8, 8)), (14, 14, 0.25, (7, 7)), (8, 32, 0.25, (4, 16)), (32, 8, 0.25, (16, 4)),
        (2, 32, 0.5, (1, 32)), (4, 4, 0.01, (1, 1)), (4, 4, 0.99, (4, 4)),
    ])
    def test_exact(self, h, w, keep, shape):
        assert block_shape(h, w, keep) == shape

    @pytest.mark.parametrize("h,w,keep", [
        (16, 16, 0.25), (16, 16, 0.5), (16, 16, 0.1), (16, 16, 0.9), (14, 14, 0.25), (14, 14, 0.5),
        (7, 7, 0.25), (8, 32, 0.25), (32, 8, 0.25), (3, 5, 0.4), (24, 16, 0.3), (2, 32, 0.5),
    ])
    def test_area_close_to_keep(self, h, w, keep):
        bh, bw = block_shape(h, w, keep)
        assert 1 <= bh <= h and 1 <= bw <= w
        assert abs(bh * bw - h * w * keep) <= 0.05 * h * w * keep + 1

    @pytest.mark.parametrize("h,w,keep", [(32, 2, 0.5), (100, 1, 0.5)])
    def test_area_close_to_keep_tall_narrow(self, h, w, keep):
        bh, bw = block_shape(h, w, keep)
        assert abs(bh * bw - h * w * keep) <= 0.05 * h * w * keep + 1


class TestKeptPatches:
    @pytest.mark.parametrize("kind,h,w,drop,kept", [
        ("random", 16, 16, 0.0, 256), ("random", 16, 16, 0.5, 128), ("random", 16, 16, 0.75, 64),
        ("random", 14, 14, 0.75, 49), ("random", 14, 14, 0.5, 98), ("random", 16, 16, 0.7, 76),
        ("random", 2, 2, 0.9, 1), ("random", 1, 1, 0.5, 1),
        ("grid", 16, 16, 0.75, 64), ("grid", 14, 14, 0.75, 49), ("grid", 4, 8, 0.75, 8),
        ("block", 16, 16, 0.75, 64), ("block", 14, 14, 0.75, 49), ("block", 16, 16, 0.5, 128),
    ])
    def test_count(self, kind, h, w, drop, kept):
        assert kept_patches(kind, h, w, drop) == kept

    @pytest.mark.parametrize("h,w,drop", [
        (16, 16, 0.5), (16, 16, 0.75), (16, 16, 0.7), (14, 14, 0.75), (14, 14, 0.3), (7, 9, 0.6),
        (2, 2, 0.9), (16, 16, 0.1),
    ])
    def test_random_matches_open_clip_patch_dropout(self, h, w, drop):
        x = torch.zeros(2, 1 + h * w, 4)
        assert PatchDropout(drop).train()(x).shape[1] - 1 == kept_patches("random", h, w, drop)

    def test_equal_budgets_at_075(self):
        counts = {kind: kept_patches(kind, 16, 16, 0.75) for kind in ("random", "grid", "block")}
        assert counts == {"random": 64, "grid": 64, "block": 64}

    def test_grid_odd_raises(self):
        with pytest.raises(ValueError):
            kept_patches("grid", 15, 15, 0.75)


class TestPatchSelect:
    @pytest.mark.parametrize("kind,grid,drop,keep", [
        ("grid", (4, 4), 0.75, 4), ("grid", (16, 16), 0.75, 64), ("grid", (6, 8), 0.75, 12),
        ("block", (4, 4), 0.75, 4), ("block", (16, 16), 0.75, 64), ("block", (16, 16), 0.5, 128),
        ("block", (5, 7), 0.6, 14),
    ])
    def test_keeps_input_rows_at_sampled_indices(self, kind, grid, drop, keep):
        h, w = grid
        sel = PatchSelect(kind, grid, drop).train()
        assert sel.keep == keep
        x = positional(5, h * w)
        torch.manual_seed(3)
        idx = sel.sample_indices(5)
        torch.manual_seed(3)
        out = sel(x)
        assert out.shape == (5, 1 + keep, 3)
        assert idx.shape == (5, keep)
        assert torch.equal(out[:, 0], x[:, 0])  # class token first, unchanged
        for b in range(5):
            assert torch.equal(out[b, 1:], x[b, 1 + idx[b]])  # rows of the same sample
        assert torch.equal(patch_ids(out), idx)

    @pytest.mark.parametrize("kind,grid,drop", [
        ("grid", (4, 4), 0.75), ("grid", (8, 6), 0.75), ("block", (16, 16), 0.75),
        ("block", (8, 12), 0.5), ("block", (4, 4), 0.9),
    ])
    def test_each_sample_is_a_valid_mask(self, kind, grid, drop):
        h, w = grid
        sel = PatchSelect(kind, grid, drop)
        idx = sel.sample_indices(32, generator=torch.Generator().manual_seed(0))
        for row in idx:
            if kind == "grid":
                assert any(row.tolist() == grid_keep_indices(h, w, (a, b)).tolist()
                           for a in (0, 1) for b in (0, 1))
            else:
                assert is_block(row, h, w, sel.block)
                assert int(row.max()) < h * w

    @pytest.mark.parametrize("kind,grid,drop,distinct", [
        ("grid", (4, 4), 0.75, 4), ("grid", (16, 16), 0.75, 4), ("block", (4, 4), 0.75, 9),
        ("block", (16, 16), 0.75, 20),
    ])
    def test_samples_get_different_positions(self, kind, grid, drop, distinct):
        sel = PatchSelect(kind, grid, drop)
        idx = sel.sample_indices(64, generator=torch.Generator().manual_seed(1))
        assert len({tuple(r.tolist()) for r in idx}) >= distinct
        torch.manual_seed(1)
        out = sel.train()(positional(64, grid[0] * grid[1]))
        assert len({tuple(r.tolist()) for r in patch_ids(out)}) >= min(distinct, 4)

    @pytest.mark.parametrize("kind,drop", [("grid", 0.75), ("block", 0.75), ("block", 0.5)])
    def test_seeded_is_deterministic(self, kind, drop):
        sel = PatchSelect(kind, (16, 16), drop)
        a = sel.sample_indices(8, generator=torch.Generator().manual_seed(7))
        b = sel.sample_indices(8, generator=torch.Generator().manual_seed(7))
        assert torch.equal(a, b)
        x = positional(8, 256)
        torch.manual_seed(7)
        first = sel.train()(x)
        torch.manual_seed(7)
        assert torch.equal(sel(x), first)

    @pytest.mark.parametrize("kind,drop", [("grid", 0.75), ("block", 0.75), ("block", 0.3)])
    def test_eval_is_identity(self, kind, drop):
        sel = PatchSelect(kind, (4, 4), drop).eval()
        x = positional(2, 16)
        out = sel(x)
        assert out.shape == (2, 17, 3)
        assert torch.equal(out, x)

    def test_gradients_reach_kept_rows_only(self):
        sel = PatchSelect("grid", (4, 4), 0.75).train()
        x = positional(1, 16).requires_grad_()
        torch.manual_seed(0)
        idx = sel.sample_indices(1)
        torch.manual_seed(0)
        sel(x).sum().backward()
        touched = (x.grad[0, :, 0] != 0).nonzero().flatten()
        assert touched.tolist() == [0] + (idx[0] + 1).tolist()

    @pytest.mark.parametrize("drop", [0.5, 0.7, 0.8, 0.0, 0.74])
    def test_grid_needs_075(self, drop):
        with pytest.raises(ValueError, match="75%"):
            PatchSelect("grid", (16, 16), drop)

    def test_grid_odd_raises(self):
        with pytest.raises(ValueError):
            PatchSelect("grid", (5, 5), 0.75)


def proxy_model(train: bool = True):
    """ViT-Proxy-256tok: 64 px, patch 4 -> a 16x16 grid plus the class token (257 tokens)."""
    torch.manual_seed(0)
    return build(model_config("ViT-Proxy-256tok")).train(train)


class TestInstall:
    @pytest.mark.parametrize("kind,drop,seen", [("grid", 0.75, 65), ("block", 0.75, 65), ("block", 0.5, 129)])
    def test_first_block_tokens(self, kind, drop, seen):
        model = proxy_model()
        assert model.visual.grid_size == (16, 16)
        install(model, kind, drop)
        assert isinstance(model.visual.patch_dropout, PatchSelect)
        assert model.visual.patch_dropout.kind == kind
        probe = TokenProbe(model.visual.transformer)
        with torch.no_grad():
            out = model.visual(torch.zeros(2, 3, 64, 64))
        probe.close()
        assert probe.seen == [seen]
        assert out.shape == (2, 256)

    @pytest.mark.parametrize("kind", ["grid", "block"])
    def test_eval_after_install_turns_mask_off(self, kind):
        model = proxy_model()
        install(model, kind, 0.75)
        model.eval()
        assert not model.visual.patch_dropout.training
        x = positional(2, 256)
        assert torch.equal(model.visual.patch_dropout(x), x)

    @pytest.mark.parametrize("kind", ["grid", "block"])
    def test_install_follows_model_mode(self, kind):
        model = proxy_model(train=False)
        install(model, kind, 0.75)
        assert model.visual.patch_dropout.training is model.visual.training is False

    @pytest.mark.parametrize("drop,seen", [(0.5, 129), (0.75, 65)])
    def test_random_leaves_patch_dropout(self, drop, seen):
        model = proxy_model()
        model.visual.patch_dropout = PatchDropout(drop)
        before = model.visual.patch_dropout
        install(model, "random", drop)
        assert model.visual.patch_dropout is before
        probe = TokenProbe(model.visual.transformer)
        with torch.no_grad():
            model.visual(torch.zeros(2, 3, 64, 64))
        probe.close()
        assert probe.seen == [seen]

    def test_random_without_dropout_stays_identity(self):
        model = proxy_model()
        before = model.visual.patch_dropout
        assert isinstance(before, torch.nn.Identity)
        install(model, "random", 0.0)
        assert model.visual.patch_dropout is before

    def test_grid_install_rejects_other_drop(self):
        model = proxy_model()
        with pytest.raises(ValueError):
            install(model, "grid", 0.5)


class TestClassifyKept:
    """What the training probe calls the kept patch positions (runners.model.masks.classify_kept)."""

    @pytest.mark.parametrize("positions,h,w,kind", [
        ([list(range(16))], 4, 4, "all"),
        ([[0, 2, 8, 10]], 4, 4, "grid"),                      # one per 2x2 window, offset (0, 0)
        ([[5, 7, 13, 15], [0, 3, 8, 11]], 4, 4, "grid"),      # offsets differ per sample
        ([[0, 1, 4, 5]], 4, 4, "block"),
        ([[10, 11, 14, 15], [1, 2, 5, 6]], 4, 4, "block"),
        ([[0, 1, 2, 3]], 4, 4, "block"),                      # a 1x4 row is a rectangle
        ([[0, 1, 4, 5], [0, 2, 8, 10]], 4, 4, "random"),      # neither in every sample
        ([[0, 3, 12, 15]], 4, 4, "grid"),                     # corners: one per window
        ([[0, 1, 12, 15]], 4, 4, "random"),
        ([[0, 1, 3]], 4, 4, "random"),                        # three patches, not contiguous
        ([[0, 3, 4]], 3, 2, "random"),                        # odd grid: never a grid mask
    ])
    def test_table(self, positions, h, w, kind):
        assert classify_kept(positions, h, w) == kind

    @pytest.mark.parametrize("kind", ["grid", "block"])
    def test_patch_select_is_recognised(self, kind):
        sel = PatchSelect(kind, (8, 8), 0.75)
        idx = sel.sample_indices(16, torch.Generator().manual_seed(0))
        assert classify_kept([sorted(map(int, row)) for row in idx], 8, 8) == kind

    def test_random_patch_dropout_is_recognised(self):
        from runners.upstream.openclip_main import kept_positions

        torch.manual_seed(0)
        x = torch.randn(16, 1 + 64, 8)
        y = PatchDropout(0.75).train()(x)
        assert classify_kept(kept_positions(x, y), 8, 8) == "random"
