"""The configuration of a ``tinygrad-lm train`` run, put together from its sources.

A new run: the preset (``--preset``; by default ``cpu``, ``shakespeare`` with ``--data
shakespeare``, ``finetune`` with ``--init-from``),
overridden by a TOML file (``--config FILE.toml``, its keys the flag names with
underscores), overridden by the flags on the command line. Pretrained weights
(``--init-from``) fix the model's shape and tokenizer, so the flags that set those are
refused with them.

A resumed run (``--resume``): the configuration saved in the run. The file and the flags
may only change what does not alter the trained model: a larger ``--max-iters`` (the
learning-rate schedule keeps its length, so the extra iterations run at ``--min-lr``), how
often and how long to evaluate, the sample, the device, ``--quiet``, ``--ddp``. Any other
value that differs from the saved one is an error that names the flag.
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

from .data.corpora import BUILTIN_CORPORA
from .train import FIXED_BY_PRETRAINED, PRESETS, ConfigError, TrainConfig, flag

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

CHANGEABLE_ON_RESUME = frozenset({"max_iters", "eval_interval", "eval_iters", "sample_tokens",
                                  "device", "quiet", "ddp", "out"})
_NOT_IN_FILES = frozenset({"resume", "overwrite"})  # actions, given on the command line
_TRANSIENT = frozenset({"out", "resume", "overwrite", "quiet"})  # not part of a saved run


def _field_kinds() -> dict[str, type]:
    """The type each TOML key must have: that of the field's default (str for device)."""
    kinds: dict[str, type] = {"preset": str, "device": str, "lr_decay_iters": int,
                              "n_kv_head": int, "init_from": str}
    for field in dataclasses.fields(TrainConfig):
        if field.name not in kinds and field.name not in _NOT_IN_FILES:
            kinds[field.name] = type(field.default)
    return kinds


def read_toml(path: str | Path) -> dict[str, Any]:
    """The flag values in a TOML file (``max_iters = 3``), checked for names and types."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--config: cannot read {path}: {exc.strerror or exc}") from None
    try:
        values = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--config {path}: not valid TOML: {exc}") from None
    kinds = _field_kinds()
    for key, value in values.items():
        if key not in kinds:
            raise ConfigError(f"--config {path}: unknown key {key!r}; the keys are the flag "
                              f"names with underscores: {', '.join(sorted(kinds))}")
        kind = kinds[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            values[key] = float(value)
        elif not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ConfigError(f"--config {path}: {key} must be {kind.__name__}, got {value!r}")
    return values


def _normalized(values: dict[str, Any]) -> dict[str, Any]:
    """A data file or pretrained weights named by a relative path are recorded by their
    absolute path, so the run can be resumed from another directory."""
    values = dict(values)
    for key in ("data", "init_from"):
        path = values.get(key)
        if isinstance(path, str) and path not in BUILTIN_CORPORA and Path(path).exists():
            values[key] = str(Path(path).resolve())
    return values


def _preset(given: dict[str, Any]) -> str:
    """The preset named, else ``finetune`` for pretrained weights, ``shakespeare`` for that
    corpus, ``cpu`` for any other."""
    default = "finetune" if given.get("init_from") else \
        "shakespeare" if given.get("data") == "shakespeare" else "cpu"
    name = given.get("preset", default)
    if name not in PRESETS:
        raise ConfigError(f"--preset must be one of {', '.join(sorted(PRESETS))}, got {name!r}")
    return name


def new_run(file_values: dict[str, Any], flags: dict[str, Any]) -> TrainConfig:
    """A new run's configuration: preset < file < flags."""
    given = {**file_values, **flags}
    preset = _preset(given)
    values = {**PRESETS[preset], **given, "preset": preset}
    if given.get("init_from"):
        fixed = [k for k in FIXED_BY_PRETRAINED if k in given or k in PRESETS[preset]]
        if fixed:
            source = f"--preset {preset}'s " if fixed[0] not in given else ""
            raise ConfigError(f"{source}{flag(fixed[0])} cannot be combined with --init-from: "
                              f"the pretrained weights fix the model and its tokenizer "
                              f"(--block-size may shorten the context)")
        values["tokenizer"] = "pretrained"
    return TrainConfig(**_normalized(values))


def resumed_run(saved: dict[str, Any], file_values: dict[str, Any],
                flags: dict[str, Any]) -> TrainConfig:
    """A resumed run's configuration: the saved one, extended or relogged by file and flags."""
    given = _normalized({**file_values, **flags})
    fields = {f.name for f in dataclasses.fields(TrainConfig)} - _TRANSIENT
    # a run saved before a field existed ran with its default
    values = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.name in fields}
    values.update({k: v for k, v in saved.items() if k in fields})
    values.setdefault("lr_decay_iters", None)
    if values["lr_decay_iters"] is None:  # the schedule keeps the length it was made with
        values["lr_decay_iters"] = values["max_iters"]
    for key, value in given.items():
        if key == "preset":
            if saved.get("preset") not in (None, value):
                raise ConfigError(f"--preset {value} contradicts the run being resumed, which "
                                  f"started from --preset {saved['preset']}; drop --preset")
            continue
        if key == "max_iters" and value < values["max_iters"]:
            raise ConfigError(f"--max-iters {value} is less than the {values['max_iters']} "
                              f"iterations of the run being resumed; --resume can only extend it")
        if key not in CHANGEABLE_ON_RESUME and value != values.get(key):
            raise ConfigError(f"{flag(key)} {value} contradicts the run being resumed, which "
                              f"has {flag(key)} {values.get(key)}; drop the flag, or start a "
                              f"new run (--overwrite, or another --out)")
        values[key] = value
    return TrainConfig(**{**values, "resume": True})
