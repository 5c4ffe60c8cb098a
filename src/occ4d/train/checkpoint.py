"""Checkpoints: tensors in safetensors, everything else in JSON, both written atomically.

A checkpoint of step N is ``ckpt-<N>.safetensors`` (model, EMA and optimiser tensors under the
prefixes ``model.``, ``ema.``, ``optim.``) plus ``ckpt-<N>.json`` (config, step, samples seen,
seed, optimiser hyper-parameters, logs). The JSON is written last, so a checkpoint exists only
once both files are complete; a run killed mid-write leaves the previous checkpoint intact.
Nothing is ever unpickled: loading reads tensors and JSON only.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from safetensors.torch import load_file, save

from occ4d.core.errors import DataError
from occ4d.io.atomic import write_bytes, write_json

_NAME = re.compile(r"^ckpt-(\d{8})\.json$")
_FILE = re.compile(r"^ckpt-(\d{8})\.(?:json|safetensors)$")
_EXPECTED = "a checkpoint is a run folder or a ckpt-<step>.safetensors file with its .json beside it"


def checkpoint_paths(run_dir: str | Path, step: int) -> tuple[Path, Path]:
    run_dir = Path(run_dir)
    return run_dir / f"ckpt-{step:08d}.safetensors", run_dir / f"ckpt-{step:08d}.json"


def list_checkpoints(run_dir: str | Path) -> list[int]:
    """Steps of the complete checkpoints in ``run_dir``, ascending."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    steps = []
    for p in run_dir.iterdir():
        m = _NAME.match(p.name)
        if m and checkpoint_paths(run_dir, int(m.group(1)))[0].is_file():
            steps.append(int(m.group(1)))
    return sorted(steps)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The JSON file of the newest complete checkpoint, or None."""
    steps = list_checkpoints(run_dir)
    return checkpoint_paths(run_dir, steps[-1])[1] if steps else None


def optimizer_to_flat(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimiser state dict into tensors (exact) and JSON-able hyper-parameters."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict] = {}
    for idx, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"{idx}.{key}"] = value
            else:
                scalars.setdefault(str(idx), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_from_flat(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                        meta: dict) -> None:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    for idx, kv in meta.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(kv)
    # JSON turned tuples (betas) into lists; "params" is the one list-valued entry
    groups = [{k: (v if k == "params" or not isinstance(v, list) else tuple(v)) for k, v in g.items()}
              for g in meta["param_groups"]]
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def save_checkpoint(run_dir: str | Path, step: int, tensors: dict[str, dict[str, torch.Tensor]],
                    state: dict, keep_last: int) -> Path:
    """Write ``tensors`` ({prefix: {name: tensor}}) and ``state`` for ``step``; prune to keep_last.

    Returns the JSON path. Call on one process only.
    """
    st_path, json_path = checkpoint_paths(run_dir, step)
    flat = {f"{prefix}.{name}": t.detach().to("cpu").contiguous()
            for prefix, group in tensors.items() for name, t in group.items()}
    # Serialised in memory and written by occ4d.io.atomic: safetensors' save_file keeps its own
    # temporary file (.tmpXXXXXX) that a kill would leave behind under a name nothing cleans.
    write_bytes(st_path, save(flat, metadata={"step": str(step)}))
    write_json(json_path, {**state, "step": step, "tensors": st_path.name})
    # Every file of an older step goes, not only the complete checkpoints: a run killed mid-prune
    # leaves half a pair, which the next prune removes.
    oldest = list_checkpoints(run_dir)[-keep_last:][0]
    for p in Path(run_dir).iterdir():
        m = _FILE.match(p.name)
        if m and int(m.group(1)) < oldest:
            p.unlink(missing_ok=True)
    return json_path


def load_checkpoint(path: str | Path) -> tuple[dict[str, dict[str, torch.Tensor]], dict]:
    """Read a checkpoint (its JSON path, its safetensors path, or a run folder: the latest).

    Returns ({prefix: {name: tensor}}, state). Anything else (a missing, truncated or foreign
    file, a pickle, JSON that is not a checkpoint's) raises DataError naming the file.
    """
    path = Path(path)
    if path.is_dir():
        latest = latest_checkpoint(path)
        if latest is None:
            raise DataError(path, "no complete checkpoint (ckpt-<step>.json + .safetensors) in this folder")
        path = latest
    if not path.exists():
        raise DataError(path, f"no such file or folder; {_EXPECTED}")
    if path.suffix == ".safetensors":
        path = path.with_suffix(".json")
    elif path.suffix != ".json":
        raise DataError(path, f"not a checkpoint; {_EXPECTED}")
    try:
        state = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError as e:
        raise DataError(path, "checkpoint JSON not found") from e
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(path, f"checkpoint JSON is not valid JSON ({e})") from e
    if not isinstance(state, dict):
        raise DataError(path, f"not a checkpoint's JSON (a {type(state).__name__}, not an object)")
    tensors = state.get("tensors", path.with_suffix(".safetensors").name)
    if not isinstance(tensors, str) or Path(tensors).name != tensors:
        raise DataError(path, f"'tensors' must name a file beside the JSON, got {tensors!r}")
    st_path = path.with_name(tensors)
    try:
        flat = load_file(str(st_path))
    except FileNotFoundError as e:
        raise DataError(st_path, "checkpoint tensors not found") from e
    except Exception as e:  # safetensors raises its own error types for corrupt headers
        raise DataError(st_path, f"unreadable safetensors file ({type(e).__name__}: {e})") from e
    groups: dict[str, dict[str, torch.Tensor]] = {}
    for name, t in flat.items():
        prefix, dot, rest = name.partition(".")
        if not dot:
            raise DataError(st_path, f"tensor {name!r} has no group prefix (model., ema., optim.)")
        groups.setdefault(prefix, {})[rest] = t
    if "model" not in groups:
        raise DataError(st_path, "no model weights (tensors named model.*)")
    return groups, state
