"""radground's versioned result schema (one form for every model) and the adapters into it."""
from lib.schema.adapters import ADAPTERS, detect_format, to_grounding
from lib.schema.hook import GROUNDING_KEY, attach_grounding
from lib.schema.models import (
    SCHEMA_VERSION,
    Box,
    CoordinateSystem,
    Finding,
    GroundingResult,
    ImageGeometry,
    MeasuredAttributes,
    ModelInfo,
    RegionReport,
    ReportedAttributes,
    Segment,
    SentenceRef,
    TaskType,
)

__all__ = [
    "ADAPTERS", "GROUNDING_KEY", "SCHEMA_VERSION", "Box", "CoordinateSystem", "Finding", "GroundingResult",
    "ImageGeometry", "MeasuredAttributes", "ModelInfo", "RegionReport", "ReportedAttributes", "Segment",
    "SentenceRef", "TaskType", "attach_grounding", "detect_format", "to_grounding",
]
