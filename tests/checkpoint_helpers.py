"""Checkpoints the tests write themselves."""

from __future__ import annotations


def save_tiny_classifier(path, class_names, alpha: float = 0.7):
    """A seeded, untrained ``tiny`` PAM classifier saved as ``train-pam`` saves one; returns ``path``."""
    import torch

    from bestie_labels.classifier import build_classifier, save_checkpoint

    torch.manual_seed(0)
    model = build_classifier("tiny", len(class_names), alpha=alpha)
    save_checkpoint(path, {"format": "bestie-pam", "version": 1, "model": model.state_dict(),
                           "options": {"backbone": "tiny", "pam": True, "alpha": alpha, "crop_size": 64},
                           "class_names": list(class_names), "epoch": 1})
    return path
