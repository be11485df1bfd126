"""Validated configuration objects, loaded from YAML and saved next to every output.

Every stage has one ``Config`` subclass: its fields carry the defaults and the help text,
unknown keys are errors, and a bad value is reported with the file and the field. Values are
validated strictly: ``max_actions: false`` or ``n: "3"`` are refused, not coerced (an int
is still a valid float).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

C = TypeVar("C", bound="Config")


class ConfigError(ValueError):
    pass


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False, strict=True)

    @classmethod
    def load(cls: type[C], path: str | Path | None = None, base: C | None = None, **overrides: Any) -> C:
        """Defaults (or ``base``'s fields: a preset's), then the YAML file (if any), then keyword
        overrides (None = not given)."""
        data: dict[str, Any] = base.model_dump() if base is not None else {}
        if path is not None:
            data.update(read_yaml(path))
        data.update({k: v for k, v in overrides.items() if v is not None})
        return validated(cls, data, str(path) if path is not None else "overrides")

    def saved_fields(self) -> dict[str, Any]:
        """What :meth:`save` writes: every field (a subclass may leave some out)."""
        return self.model_dump(mode="json")

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.saved_fields(), sort_keys=False), encoding="utf-8")


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A config file's top-level mapping; errors name the file (and the line of a YAML error).

    The one reader of config files (stage configs and recipes). Merging a recipe's sections over
    a preset is one level deep (:func:`autocoa.recipe.config.load_recipe`), a few lines, so no
    config framework (OmegaConf, Hydra) is taken on for it."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: invalid YAML: {getattr(e, 'problem', e)}") from None
    if loaded is not None and not isinstance(loaded, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of field: value")
    return loaded or {}


def validated(cls: type[C], data: dict[str, Any], where: str) -> C:
    """``cls`` from ``data``; a ConfigError names ``where`` (the file) and every invalid field."""
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        msgs = [": ".join([".".join(str(p) for p in err["loc"]), _message(err)]).lstrip(": ") for err in e.errors()]
        raise ConfigError(f"{where}: invalid {cls.__name__}: " + "; ".join(msgs)) from None


def _message(err: Any) -> str:
    """A validation error's message; our own validators' ValueErrors without pydantic's prefix."""
    return str(err["ctx"]["error"]) if err["type"] == "value_error" and "error" in err.get("ctx", {}) else err["msg"]
