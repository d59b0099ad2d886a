"""HTTP shapes of the service (pydantic lives here and nowhere else in specread).

The read response mirrors :meth:`specread.types.ReadResult.to_dict`, so
the CLI (``specread read --json``) and HTTP return the same document; these
models only describe and check it for the OpenAPI schema.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field

from specread.review.store import DECISIONS
from specread.units.registry import get_registry

__all__ = [
    "DecisionName",
    "DecisionRequest",
    "EntitiesResponse",
    "EntityInfo",
    "EntityName",
    "ErrorBody",
    "ErrorDetail",
    "Evidence",
    "HealthResponse",
    "PredictionOut",
    "ReadResponse",
    "TokenOut",
]

EntityName = StrEnum("EntityName", {name: name for name in get_registry().entities})  # type: ignore[misc]
"""The entity names the unit registry knows (so the OpenAPI schema lists them)."""

DecisionName = StrEnum("DecisionName", {name: name for name in DECISIONS})  # type: ignore[misc]
"""What a reviewer can decide (:data:`specread.review.store.DECISIONS`)."""


class TokenOut(BaseModel):
    text: str = Field(description="The text line as read.")
    score: float = Field(description="Recogniser confidence, 0..1.")
    quad: list[list[float]] = Field(description="Four corners [x, y], clockwise from top-left, relative 0..1.")
    box: list[float] = Field(description="Axis-aligned box [x0, y0, x1, y1], relative 0..1.")


class Evidence(BaseModel):
    text: str = Field(description="The OCR line the value was read from.")
    box: list[float] = Field(description="Its box [x0, y0, x1, y1], relative 0..1.")
    score: float = Field(description="Recogniser confidence of that line.")
    raw: str = Field(description="The mention inside the line, e.g. '500 g'.")


class PredictionOut(BaseModel):
    entity: str
    prediction: str = Field(description="Challenge format '<number> <unit>', or '' when nothing was read.")
    value: float | None = None
    unit: str | None = None
    confidence: float = Field(description="0..1; how sure the selector is of this answer.")
    source: str = Field(description="What chose the answer (the scorer's name, 'prior', or '' for none).")
    evidence: Evidence | None = None


class ReadResponse(BaseModel):
    width: int = Field(description="Image width in pixels (after EXIF rotation).")
    height: int = Field(description="Image height in pixels.")
    tokens: list[TokenOut] = Field(description="Every OCR line, for drawing.")
    predictions: dict[str, PredictionOut] = Field(description="One prediction per requested entity.")


class EntityInfo(BaseModel):
    name: str
    units: list[str] = Field(description="Units a prediction for this entity may use.")


class EntitiesResponse(BaseModel):
    entities: list[EntityInfo]


class HealthResponse(BaseModel):
    status: str = Field(description="'ok' once the OCR pool is warm, 'starting' before.")
    workers: int
    pending: int = Field(description="Requests waiting for or inside the OCR pool.")


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable error code, e.g. 'upload_too_large'.")
    message: str = Field(description="One sentence for people.")
    details: list[dict] | None = Field(default=None, description="Per-field problems of an invalid request.")


class ErrorBody(BaseModel):
    error: ErrorDetail


class DecisionRequest(BaseModel):
    """A reviewer's decision on one row (``specread review``)."""

    decision: DecisionName = Field(
        description="accept the answer, pick a candidate, type a value, or say it is not on the image."
    )
    candidate: int | None = Field(default=None, ge=1, le=999, description="pick: the choice's number (1 = first).")
    value: str | None = Field(default=None, max_length=100, description="typed: a number and a unit, e.g. '12.5 cm'.")
