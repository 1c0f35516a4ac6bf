"""The JSON Schema of the configuration file, for editors (``rotator config schema``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema

from rotator.config.model import RotatorConfig
from rotator.timespec import Percentage, format_duration


class _SchemaGenerator(GenerateJsonSchema):
    """Show defaults the way users write them (``10s``, not ``PT10S``)."""

    def encode_default(self, dft: Any) -> Any:
        if isinstance(dft, timedelta):
            return format_duration(dft)
        if isinstance(dft, Percentage):
            return str(dft)
        if isinstance(dft, BaseModel):
            return dft.model_dump(mode="json")
        return super().encode_default(dft)


def config_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the file as users write it, for editors.

    Cross-field rules (e.g. rotate_before < validity) are checked by
    :func:`~rotator.config.load_config` only.
    """
    schema = RotatorConfig.model_json_schema(mode="validation", schema_generator=_SchemaGenerator)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **schema,
        "title": "stackstate-key-rotator configuration",
    }
