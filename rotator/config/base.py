"""What every configuration model shares: its base class and problems that know their place.

:class:`ConfigModel` makes unknown fields errors, instances immutable and ``null`` mean "use the
default". :func:`raise_problems` lets a validator report several problems at once, each at its
own path below the validator's (``keys[3].targets[1]``); :mod:`rotator.config.messages` renders
them.
"""

from __future__ import annotations

from typing import Any, Final, NoReturn

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError

# --------------------------------------------------------------------------------------------
# Errors that know their place
# --------------------------------------------------------------------------------------------

#: Error type of the problems found by cross-field checks (see :func:`raise_problems`).
PROBLEMS_TYPE: Final = "rotator_config"


def raise_problems(problems: list[tuple[str, str]]) -> NoReturn:
    """Raise several located problems at once from a validator.

    pydantic reports one error per raise, at the validator's own location. The sub-paths ride
    along in the error's context, and :func:`rotator.config.messages.validation_error_lines`
    appends them to that location, so a model-level check can still name
    ``keys[3].targets[1]``.
    """
    summary = "; ".join(f"{path}: {message}" if path else message for path, message in problems)
    raise PydanticCustomError(
        PROBLEMS_TYPE,
        "{summary}",
        {"summary": summary, "problems": [[path, message] for path, message in problems]},
    )


def join_path(base: str, sub: str) -> str:
    """``base`` extended by ``sub`` (``.name`` or ``[index]``), as error paths are written."""
    if not sub:
        return base
    if not base:
        return sub.lstrip(".")
    return base + sub if sub.startswith("[") else f"{base}.{sub}"


# --------------------------------------------------------------------------------------------
# The base model
# --------------------------------------------------------------------------------------------


class ConfigModel(BaseModel):
    """Common settings: unknown fields are errors, instances are immutable, null = default."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        coerce_numbers_to_str=True,  # `namespace: 2024` or `tier: 1` in YAML are meant as strings
        use_attribute_docstrings=True,  # field docstrings become JSON-schema descriptions
    )

    @model_validator(mode="before")
    @classmethod
    def _null_means_default(cls, data: Any) -> Any:
        if isinstance(data, dict):
            # Only known fields: a misspelt `namspace:` with no value must still be reported.
            return {k: v for k, v in data.items() if v is not None or k not in cls.model_fields}
        return data
