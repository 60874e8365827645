"""Report plots with matplotlib, byte-identical across processes (Agg, no timestamps in metadata)."""
from __future__ import annotations

import io
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from cliprepro.record import Record  # noqa: E402

PNG_METADATA = {"Software": None}  # matplotlib writes its version otherwise; no dates in PNG


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata=PNG_METADATA)
    plt.close(fig)
    return buf.getvalue()


def throughput_plot(records: list[tuple[str, Record]]) -> bytes | None:
    """Images/s and speed-up against the tokens reaching the first vision block, one series per
    (scale, device, mode, model), from the newest record of each (scale, device)."""
    latest: dict[tuple[str, str], Record] = {}
    for _rid, record in records:
        device = str(record.provenance.get("device", {}).get("device_class", "unknown"))
        latest[(record.scale, device)] = record  # records arrive oldest first
    series: dict[str, list[dict]] = defaultdict(list)
    for (scale, device), record in sorted(latest.items()):
        for p in record.points:
            if "tokens_first_block_planned" in p and "img_per_s_median" in p:
                speedup = record.metrics.get(f"speedup_{p['mode']}_{p['arm']}")
                label = f"{scale} | {device[:32]} | {p['mode']} | {p.get('model', '')}"
                series[label].append({**p, "speedup": speedup})
    if not series:
        return None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    for label, pts in sorted(series.items()):
        pts = sorted(pts, key=lambda p: (-p["tokens_first_block_planned"], p["arm"]))
        xs = [p["tokens_first_block_planned"] for p in pts]
        ax1.plot(xs, [p["img_per_s_median"] for p in pts], marker="o", label=label)
        for p in pts:
            ax1.annotate(p["arm"], (p["tokens_first_block_planned"], p["img_per_s_median"]), fontsize=6)
        judged = [p for p in pts if p["speedup"] is not None and p["speedup"].value is not None]
        if judged:
            # the judged statistic: median of per-round ratios, with its order-statistic interval
            med = [p["speedup"].value for p in judged]
            err = [[m - p["speedup"].lo for m, p in zip(med, judged)],
                   [p["speedup"].hi - m for m, p in zip(med, judged)]]
            ax2.errorbar([p["tokens_first_block_planned"] for p in judged], med, yerr=err, marker="o",
                         capsize=3, linestyle="none", label=f"measured: {label}")
    ax1.set(xlabel="image tokens at the first block", ylabel="images / s (median of rounds)",
            title="Throughput vs image tokens", xscale="log")
    ax2.axhline(1.0, color="grey", linewidth=0.8)
    ax2.set(xlabel="image tokens at the first block", ylabel="speed-up vs its baseline arm (x)",
            title="Speed-up (median, order-statistic interval)", xscale="log")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    fig.tight_layout()
    return _png(fig)


def accuracy_plot(records: list[tuple[str, Record]]) -> bytes | None:
    """Zero-shot accuracy (mean over attributes; mean over seeds, bars min to max) against the
    training compute from scratch to each stage, from the newest record of each (scale, device)."""
    latest: dict[tuple[str, str], Record] = {}
    for _rid, record in records:
        device = str(record.provenance.get("device", {}).get("device_class", "unknown"))
        latest[(record.scale, device)] = record  # records arrive oldest first
    fig, ax = plt.subplots(figsize=(8, 5))
    drawn = False
    chances = sorted({r.inputs["chance_acc1_mean_pct"] for r in latest.values() if "chance_acc1_mean_pct" in r.inputs})
    for chance in chances:  # where a stage sits near it, it did not train
        ax.axhline(chance, color="grey", linestyle="--", linewidth=1, label=f"uniform guess ({chance:g}%)")
    for (scale, device), record in sorted(latest.items()):
        by_stage: dict[str, list[dict]] = defaultdict(list)
        for p in record.points:
            if "train_gflop" in p and "acc1_mean" in p:
                by_stage[p["stage"]].append(p)
        if not by_stage:
            continue
        names = sorted(by_stage, key=lambda s: (by_stage[s][0]["train_gflop"], s))
        xs = [by_stage[s][0]["train_gflop"] for s in names]
        accs = [[p["acc1_mean"] for p in by_stage[s]] for s in names]
        ys = [sum(a) / len(a) for a in accs]
        err = [[y - min(a) for y, a in zip(ys, accs)], [max(a) - y for y, a in zip(ys, accs)]]
        ax.errorbar(xs, ys, yerr=err, marker="o", linestyle="none", capsize=3,
                    label=f"{scale} | {device[:32]}")
        for name, x, y, a in zip(names, xs, ys, accs):
            ax.annotate(f"{name} (n={len(a)})", (x, y), fontsize=7, xytext=(4, 3), textcoords="offset points")
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set(xlabel="training compute from scratch (GFLOP, 3x forward FLOPs x samples)",
           ylabel="zero-shot acc1, mean of attributes (%)", title="Accuracy vs training compute")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _png(fig)


def claims_plot(rows: list) -> bytes | None:
    """Claimed vs measured, one panel per claim and scale that has a measurement: each device
    class's pooled value with the interval its verdict used, the claim's value (dashed) and, for
    one-sided claims, the threshold it must clear (dotted). Rows: cliprepro.board.BoardRow."""
    panels: dict[tuple[str, str], list] = defaultdict(list)
    for r in rows:
        if r.device_class and r.measured is not None:
            panels[(r.claim, r.scale)].append(r)
    if not panels:
        return None
    cols = min(4, len(panels))
    nrows = -(-len(panels) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 2.6 * nrows), squeeze=False)
    for ax, ((claim, scale), members) in zip(axes.flat, sorted(panels.items())):
        for i, r in enumerate(sorted(members, key=lambda r: r.device_class)):
            lo = r.lo if r.lo is not None and r.lo > float("-inf") else r.measured
            hi = r.hi if r.hi is not None and r.hi < float("inf") else r.measured
            ax.errorbar([i], [r.measured], yerr=[[r.measured - lo], [hi - r.measured]], marker="o", capsize=3,
                        color={"reproduced": "tab:green", "not_reproduced": "tab:red"}.get(r.verdict, "tab:grey"))
        first = members[0]
        if first.expected is not None:
            ax.axhline(first.expected, color="black", linestyle="--", linewidth=1, label="expected (the paper; at proxy, the calibrated value)")
        if first.threshold is not None:
            ax.axhline(first.threshold, color="black", linestyle=":", linewidth=1, label="threshold")
        ax.set_xticks(range(len(members)), [r.device_class[:18] for r in sorted(members, key=lambda r: r.device_class)],
                      fontsize=6)
        ax.set_title(f"{claim} ({scale})", fontsize=7)
        ax.set_ylabel(first.unit, fontsize=7)
        ax.tick_params(axis="y", labelsize=6)
        ax.set_xlim(-0.6, len(members) - 0.4)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, fontsize=7, loc="lower right")
    fig.suptitle("Claimed vs measured (pooled per device class; green reproduced, red not, grey other)",
                 fontsize=8)
    fig.tight_layout()
    return _png(fig)


def time_to_target_plot(records: list[tuple[str, Record]]) -> bytes | None:
    """Zero-shot accuracy against cumulative training step time (data wait and evaluation
    excluded), one line per arm and seed, with the pre-registered target, from the newest record
    that has time-to-target curves (runners.training.targets)."""
    newest = next((r for _rid, r in reversed(records) if any("time_to_target" in p for p in r.points)), None)
    if newest is None:
        return None
    names = sorted({p["time_to_target"] for p in newest.points if "time_to_target" in p})
    fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 4.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        mine = [p for p in newest.points if p.get("time_to_target") == name]
        curves: dict[tuple[str, int], list[dict]] = defaultdict(list)
        for p in mine:
            if "acc1_mean" in p:
                curves[(p["side"], p["seed"])].append(p)
        for (side, seed), pts in sorted(curves.items()):
            ax.plot([p["step_s_cum"] for p in pts], [p["acc1_mean"] for p in pts], marker="o",
                    color="tab:blue" if side == "arm" else "tab:orange", alpha=0.8,
                    label=f"{side} ({' > '.join(dict.fromkeys(p['curve_stage'] for p in pts))}) seed {seed}")
        target = next(p["target_acc1_pct"] for p in mine if "target_acc1_pct" in p)
        ax.axhline(target, color="grey", linestyle="--", linewidth=1, label=f"target {target:g}% (pre-registered)")
        ax.set(xlabel="training step time (s; data wait and evaluation excluded)", ylabel="mean zero-shot acc1 (%)",
               title=f"{name} ({newest.scale})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    fig.tight_layout()
    return _png(fig)
