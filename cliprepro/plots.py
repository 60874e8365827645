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
    """Images/s and speed-up vs patch-drop ratio, one line per (scale, device, mode), newest record each."""
    latest: dict[tuple[str, str], Record] = {}
    for _rid, record in records:
        device = str(record.provenance.get("device", {}).get("device_class", "unknown"))
        latest[(record.scale, device)] = record  # records arrive oldest first
    series: dict[str, list[dict]] = defaultdict(list)
    for (scale, device), record in sorted(latest.items()):
        for p in record.points:
            if "patch_dropout" in p and "img_per_s_median" in p:
                speedup = record.metrics.get(f"speedup_{p['mode']}_{p['arm']}")
                series[f"{scale} | {device[:40]} | {p['mode']}"].append({**p, "speedup": speedup})
    if not series:
        return None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for label, pts in sorted(series.items()):
        pts = sorted(pts, key=lambda p: p["patch_dropout"])
        xs = [p["patch_dropout"] for p in pts]
        ax1.plot(xs, [p["img_per_s_median"] for p in pts], marker="o", label=label)
        base = pts[0]
        # the judged statistic: median of per-round ratios, with its order-statistic interval
        med = [1.0] + [p["speedup"].value for p in pts[1:]]
        err = [[0.0] + [m - p["speedup"].lo for m, p in zip(med[1:], pts[1:])],
               [0.0] + [p["speedup"].hi - m for m, p in zip(med[1:], pts[1:])]]
        ax2.errorbar(xs, med, yerr=err, marker="o", capsize=3, label=f"measured: {label}")
        ax2.plot(xs, [base["fwd_flops_per_sample"] / p["fwd_flops_per_sample"] for p in pts],
                 linestyle="--", marker="x", label=f"FLOPs-ideal: {label}")
    ax1.set(xlabel="patch-drop ratio", ylabel="images / s (median of rounds)",
            title="Throughput vs mask ratio")
    ax2.set(xlabel="patch-drop ratio", ylabel="speed-up vs no masking (x)",
            title="Measured vs FLOPs-ideal speed-up")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    fig.tight_layout()
    return _png(fig)
