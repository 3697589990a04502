"""Checkpoints: fp16 safetensors with the model's config dataclass in the metadata.

One file holds everything needed to rebuild the model (no separate config to
lose), and stays small: every shipped model is well under 20 MB.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Callable, TypeVar

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from redrum_kit.errors import ModelError

M = TypeVar("M", bound=nn.Module)


def save(model: nn.Module, path: Path, extra: dict | None = None) -> None:
    """Weights as fp16, `model.cfg` (a dataclass) and `extra` facts as JSON metadata."""
    tensors = {k: v.detach().to(torch.float16) if v.is_floating_point() else v.detach()
               for k, v in model.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"config": json.dumps(asdict(model.cfg)),
                                            "extra": json.dumps(extra or {})})


def load(path: Path, config_cls: type, build: Callable[..., M], what: str, train_command: str) -> M:
    """Rebuild `build(config_cls(**config))` from `path` and load its weights (as float32)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: {what} checkpoint not found; run `{train_command}`")
    try:
        with safe_open(str(path), "pt") as f:
            cfg = config_cls(**json.loads(f.metadata()["config"]))
        model = build(cfg)
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in load_file(str(path)).items()})
    except Exception as exc:  # safetensors, json and torch each raise their own types
        raise ModelError(f"{path}: damaged or incompatible {what} checkpoint ({exc})") from None
    return model.eval()
