"""The tables, JSON summaries and plot of ``bench_quality.py``: per family mean +- std over
seeds, the mean and worst family, the label-stage variants and the variants trained on, each
with the paired gap to the default and whether it exceeds the seed spread."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench_ablation import aggregate

from bestie_labels.algorithms.instance_fates import FATES

#: The figures per family and seed, and whether higher is better (for the worst family).
METRICS = {"cue precision %": True, "cue recall %": True, "WSSS mIoU": True, "pseudo precision %": True,
           "pseudo recall %": True, "pseudo TP": True, "weak mAP50": True, "full mAP50": True,
           "weak / full": True, "PAM cues TP": True, "CAM cues TP": True}


VARIANT_METRICS = ("WSSS mIoU", "pseudo TP", "pseudo precision %", "pseudo recall %")


def summarise_variants(per_run: dict, families: list[str]) -> dict:
    """Per family and variant: mean +- std of :data:`VARIANT_METRICS` over seeds, the paired gap to
    the default and whether it exceeds the spread (``|gap| > std_a + std_b``, as bench_ablation;
    never with one seed)."""
    out = {}
    for f in families:
        runs = [r["variants"] for r in per_run[f].values() if "variants" in r]
        if not runs:
            continue
        out[f] = {}
        for v in ["default", *[v for v in runs[0] if v != "default"]]:
            out[f][v] = {}
            for m in VARIANT_METRICS:
                a = np.array([r[v][m] for r in runs], float)
                d = a - np.array([r["default"][m] for r in runs], float)
                sd = a.std(ddof=1) if a.size > 1 else 0.0
                sd0 = np.std([r["default"][m] for r in runs], ddof=1) if a.size > 1 else 0.0
                out[f][v][m] = {"mean": float(a.mean()), "std": float(sd), "gap": float(d.mean()),
                                "exceeds": bool(abs(d.mean()) > sd + sd0) and v != "default" and a.size > 1,
                                "same_sign": bool((d > 0).all() or (d < 0).all())}
            out[f][v]["lost"] = {k: int(sum(r[v]["lost"][k] for r in runs)) for k in FATES}
    return out


def format_variants(var: dict) -> str:
    lines = ["\nlabel-stage variants (no training): mean +- std over seeds; * = gap to default beyond the spread"]
    for f, vs in var.items():
        lines.append(f"{f}")
        for v, ms in vs.items():
            cells = "  ".join(f"{m} {r['mean']:6.1f}+-{r['std']:4.1f}{'*' if r['exceeds'] else ' '}"
                              for m, r in ms.items() if m != "lost")
            lost = ", ".join(f"{k} {n}" for k, n in ms["lost"].items())
            lines.append(f"  {v:<24} {cells}\n  {'':<24} lost (summed over seeds): {lost}")
    return "\n".join(lines)


def summarise_weak_variants(per_run: dict, families: list[str], variants: list[str]) -> dict:
    """Per family and ``--weak-variants`` variant: weak mAP50 and weak / full, mean +- std over
    seeds, the paired gap to the default's and whether it exceeds the spread (``std_a + std_b``)."""
    out = {}
    for f in families:
        runs = list(per_run[f].values())
        out[f] = {}
        for v in variants:
            out[f][v] = {}
            for m in ("weak mAP50", "weak / full"):
                a = np.array([r["metrics"][f"{m} [{v}]"] for r in runs], float)
                b = np.array([r["metrics"][m] for r in runs], float)
                sa, sb = (a.std(ddof=1), b.std(ddof=1)) if a.size > 1 else (0.0, 0.0)
                gap = float((a - b).mean())
                out[f][v][m] = {"mean": float(a.mean()), "std": float(sa), "default": float(b.mean()),
                                "gap": gap, "exceeds": bool(a.size > 1 and abs(gap) > sa + sb)}
    return out


def format_weak_variants(wv: dict) -> str:
    lines = ["\nweak mAP50 of the variants' pseudo labels (mean +- std over seeds; [gap to default], * beyond "
             "the spread)"]
    for f, vs in wv.items():
        for v, ms in vs.items():
            cells = "  ".join(f"{m} {r['mean']:6.2f}+-{r['std']:5.2f} [{r['gap']:+.2f}{'*' if r['exceeds'] else ''}]"
                              for m, r in ms.items())
            lines.append(f"{f:<10} {v:<18} {cells}")
    return "\n".join(lines)


def summarise(per_run: dict, families: list[str]) -> dict:
    """Per family mean +- std over seeds; the fates summed over seeds; the mean and worst family."""
    fam = {}
    for f in families:
        runs = per_run[f]
        fam[f] = aggregate({s: {"m": r["metrics"]} for s, r in runs.items()})["m"]
        fam[f]["lost"] = {k: int(sum(r["lost"][k] for r in runs.values())) for k in FATES}
    overall = {}
    for m, higher in METRICS.items():
        means = np.array([fam[f][m]["mean"] for f in families])
        worst = int(np.argmin(means) if higher else np.argmax(means))
        overall[m] = {"mean": float(means.mean()), "worst": float(means[worst]), "worst_family": families[worst]}
    fig6 = {f: fam[f]["PAM cues TP"]["mean"] > fam[f]["CAM cues TP"]["mean"] for f in families}
    return {"families": fam, "overall": overall, "fig6_pam_beats_cam": fig6}


def format_table(summ: dict, families: list[str]) -> str:
    cols = list(METRICS)
    lines = ["family     " + " | ".join(f"{c:>16}" for c in cols)]
    for f in families:
        row = summ["families"][f]
        lines.append(f"{f:<10} " + " | ".join(f"{row[c]['mean']:7.1f} +- {row[c]['std']:5.1f}" if c != "weak / full"
                                               else f"{row[c]['mean']:7.2f} +- {row[c]['std']:5.2f}" for c in cols))
    o = summ["overall"]
    lines.append(f"{'mean':<10} " + " | ".join(f"{o[c]['mean']:16.2f}" for c in cols))
    lines.append(f"{'worst':<10} " + " | ".join(f"{o[c]['worst']:7.2f} {o[c]['worst_family']:>8}" for c in cols))
    lines.append("\nwhere the GT instances are lost (summed over seeds)")
    lines.append(f"{'family':<10} " + " ".join(f"{k:>12}" for k in FATES))
    for f in families:
        lost = summ["families"][f]["lost"]
        lines.append(f"{f:<10} " + " ".join(f"{lost[k]:>12}" for k in FATES))
    lines.append("\nFigure 6 (PAM cues give more TP than CAM cues): " +
                 ", ".join(f"{f} {'yes' if v else 'NO'}" for f, v in summ["fig6_pam_beats_cam"].items()))
    return "\n".join(lines)


def plot(summ: dict, families: list[str], path: Path) -> None:
    """Bars per family (mean +- std over seeds) of the main figures."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = ["cue recall %", "WSSS mIoU", "pseudo precision %", "pseudo recall %", "weak mAP50", "full mAP50"]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2), gridspec_kw={"width_ratios": [3, 1]})
    x = np.arange(len(families))
    w = 0.8 / len(shown)
    for i, m in enumerate(shown):
        fam = summ["families"]
        axes[0].bar(x + i * w, [fam[f][m]["mean"] for f in families], w, yerr=[fam[f][m]["std"] for f in families],
                    label=m, capsize=2)
    axes[0].set_xticks(x + 0.4 - w / 2, families)
    axes[0].set_ylim(0, 100)
    axes[0].legend(fontsize=7, ncol=3)
    axes[0].set_title("per family, mean +- std over seeds")
    r = [summ["families"][f]["weak / full"] for f in families]
    axes[1].bar(x, [v["mean"] for v in r], yerr=[v["std"] for v in r], capsize=2, color="tab:gray")
    axes[1].axhline(0.6, ls="--", c="r", lw=1)
    axes[1].set_xticks(x, families, rotation=45)
    axes[1].set_title("weak / full mAP50")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
