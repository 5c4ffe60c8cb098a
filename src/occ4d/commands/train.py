"""``occ4d train <model> --preset NAME --data DIR --out RUN [overrides]``.

The command line is generated from the registered models (``occ4d.train.registry.SPECS``):
each model is a subcommand, ``--preset`` chooses among its presets, and every field of its
configs can be overridden: ``--model.<field>`` (the model's own config), ``--optim.<field>``,
``--clips.<field>`` (clip length, batch size, splits ...) and ``--run.<field>`` (seed, cadences,
precision ...). Unset overrides keep the preset's value. The same command runs alone or under
``torchrun --nproc_per_node=N``.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Annotated, Any, Optional

import tyro

from occ4d.train.config import DataConfig, OptimConfig, RunConfig, TrainConfig
from occ4d.train.registry import SPECS, ModelSpec, get_spec

_TOP_RUN = ("out", "resume")  # RunConfig fields that are top-level flags
_TOP_DATA = ("root",)  # DataConfig fields set by --data


def _overrides(cls: type, name: str, skip: tuple[str, ...] = ()) -> type:
    """A dataclass with every field of ``cls`` as Optional, default None (= keep the preset's)."""
    hints = typing.get_type_hints(cls)
    fields = [(f.name, Optional[hints[f.name]], dataclasses.field(default=None))  # noqa: UP045
              for f in dataclasses.fields(cls) if f.name not in skip]
    return dataclasses.make_dataclass(name, fields, frozen=True)


def args_type(spec: ModelSpec) -> type:
    """The argument dataclass of ``occ4d train <spec.name>``."""
    presets = tuple(spec.presets)
    groups = {"model": _overrides(spec.config_type, f"{spec.name}_model"),
              "optim": _overrides(OptimConfig, "optim"),
              "clips": _overrides(DataConfig, "clips", _TOP_DATA),
              "run": _overrides(RunConfig, "run", _TOP_RUN)}
    return dataclasses.make_dataclass(f"Train_{spec.name.replace('-', '_')}", [
        # A plain string, checked in build_config, so that an unknown preset is one line and exit
        # status 1 like every other bad input; the metavar still lists the choices in --help.
        ("preset", Annotated[str, tyro.conf.arg(metavar="{" + ",".join(presets) + "}")],
         dataclasses.field(default=presets[0])),
        ("data", str, dataclasses.field(default="")),
        ("out", str, dataclasses.field(default="")),
        ("resume", bool, dataclasses.field(default=False)),
        *[(name, cls, dataclasses.field(default_factory=cls)) for name, cls in groups.items()],
    ], frozen=True)


def _apply(base: Any, overrides: Any, **extra) -> Any:
    given = {} if overrides is None else dataclasses.asdict(overrides)
    changes = {k: v for k, v in given.items() if v is not None}
    return dataclasses.replace(base, **changes, **extra)


def build_config(model: str, args: Any) -> TrainConfig:
    """The TrainConfig of parsed arguments: the preset with the given overrides applied."""
    spec = get_spec(model)
    if not args.data:
        raise SystemExit("occ4d train: --data DIR is required (the dataset folder or info file)")
    if not args.out:
        raise SystemExit("occ4d train: --out RUN is required (the run folder)")
    if args.preset not in spec.presets:
        raise SystemExit(f"occ4d train {model}: unknown preset {args.preset!r}; "
                         f"presets: {', '.join(spec.presets)}")
    preset = spec.presets[args.preset]
    try:
        return TrainConfig(
            model_name=model,
            preset=args.preset,
            model=_apply(preset.model, args.model),
            data=_apply(preset.data, args.clips, root=str(args.data)),
            optim=_apply(preset.optim, args.optim),
            run=_apply(RunConfig(), args.run, out=str(args.out), resume=args.resume),
        )
    except ValueError as e:  # a config's own validation: say which, without a traceback
        raise SystemExit(f"occ4d train {model} --preset {args.preset}: {e}") from e


def _defaults() -> dict[str, Any]:
    out = {}
    for name in SPECS:
        spec = get_spec(name)
        cls = args_type(spec)
        out[name] = cls()
    return out


_ARGS = _defaults()
_NAMES = {type(v): k for k, v in _ARGS.items()}
TrainArgs = tyro.extras.subcommand_type_from_defaults(_ARGS)


def train(args: Annotated[TrainArgs, tyro.conf.arg(name="")]) -> None:  # type: ignore[valid-type]
    """Train a registered model from a named preset, with optional overrides.

    Example: ``occ4d train tokenizer --preset tiny-vqvae --data synth --out runs/tok``;
    add ``--resume`` to continue the latest checkpoint of ``--out``.
    """
    from occ4d.train.loop import train as run_training

    model = _NAMES[type(args)]
    cfg = build_config(model, args)
    try:
        run_training(get_spec(model), cfg)
    except ValueError as e:  # bad data (DataError) or a run folder that cannot be used as asked
        raise SystemExit(f"occ4d train {model}: {e}") from e
