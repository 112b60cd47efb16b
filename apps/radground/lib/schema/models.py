"""The one result schema every radground task answers in (``result["grounding"]``).

Each task keeps its own JSON keys (3D Slicer and scripts read them); this schema is the form that
is the same for every model, so a viewer, the DICOM writers and a side-by-side comparison need one
reader. It is versioned (:data:`SCHEMA_VERSION`): a change that removes or renames a field bumps
the major number, an added optional field the minor one.

Conventions, stated in the data rather than assumed:

* voxel boxes are ``[lo, hi]`` *inclusive* indices in the array order of the input image;
* mm boxes are the world coordinates of the boxes' outer voxel edges, in the frame named by
  ``coordinate_system`` (``RAS``, as Slicer and the tasks' own keys; :meth:`Box.to_lps` gives the
  DICOM patient frame; ``image`` for a 2D radiograph: 2D boxes in its own plane, which has no
  patient frame);
* a finding's ``label`` is its value in the result's label map and ``label_name`` the segment name
  that travels with it (``segments``, the same mapping as the answer's ``label_names``);
* ``reported`` holds what the report says, ``measured`` what the task measured in the image.
"""
from __future__ import annotations

from enum import Enum
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION = "1.0"


class CoordinateSystem(str, Enum):
    RAS = "RAS"
    LPS = "LPS"
    #: the plane of a 2D image (a radiograph): mm from its own origin and spacing, no patient frame
    IMAGE = "image"


class TaskType(str, Enum):
    """What kind of answer a model gives (decides which parts of the schema it fills)."""

    LESION_GROUNDING = "lesion_grounding"  # one mask per lesion description (gleve)
    PHRASE_GROUNDING = "phrase_grounding"  # zero, one or many boxes per sentence (medgrounder)
    REGION_REPORT = "region_report"  # report text per anatomical region (reg2rg)
    SEGMENTATION = "segmentation"  # a label map with named classes, no report link (lesion_baseline, anatomy)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelInfo(_Strict):
    name: Optional[str] = Field(None, description="task name on the server, e.g. gleve")
    version: str = Field(description="checkpoint content hash ('untrained' without weights)")
    file: Optional[str] = None
    task_type: TaskType


class ImageGeometry(_Strict):
    """The input image's grid: what voxel boxes and the label map refer to."""

    shape: list[int] = Field(min_length=2, max_length=3)
    spacing_mm: list[float] = Field(min_length=2, max_length=3)
    affine: list[list[float]] = Field(description="4x4 (a 2D image: 3x3) voxel index -> world mm, in the result's coordinate system")
    coordinate_system: CoordinateSystem = CoordinateSystem.RAS

    @model_validator(mode="after")
    def _dims(self) -> "ImageGeometry":
        nd = len(self.shape)
        if len(self.spacing_mm) != nd or len(self.affine) != nd + 1 or any(len(r) != nd + 1 for r in self.affine):
            raise ValueError(f"a {nd}D grid needs {nd} spacings and a {nd + 1}x{nd + 1} affine")
        if (nd == 2) != (self.coordinate_system == CoordinateSystem.IMAGE):
            raise ValueError("2D grids are in their image plane ('image'); 3D grids in RAS or LPS")
        return self


class Box(_Strict):
    voxel: list[list[int]] = Field(description="[lo, hi], inclusive voxel indices of the input image")
    mm: list[list[float]] = Field(description="[lo, hi] world mm of the outer voxel edges")
    coordinate_system: CoordinateSystem = CoordinateSystem.RAS
    score: Optional[float] = Field(None, description="the box's own confidence, when the model scores boxes")

    @model_validator(mode="before")
    @classmethod
    def _planar_frame(cls, data: Any) -> Any:
        """A 2D box (a radiograph's) is in its image plane unless a frame is given: RAS/LPS are 3D."""
        if isinstance(data, dict) and "coordinate_system" not in data:
            voxel = data.get("voxel")
            if isinstance(voxel, (list, tuple)) and voxel and isinstance(voxel[0], (list, tuple)) and len(voxel[0]) == 2:
                data = {**data, "coordinate_system": CoordinateSystem.IMAGE}
        return data

    @model_validator(mode="after")
    def _ordered(self) -> "Box":
        dims = 2 if self.coordinate_system == CoordinateSystem.IMAGE else 3
        for pair in (self.voxel, self.mm):
            if len(pair) != 2 or len(pair[0]) != dims or len(pair[1]) != dims:
                raise ValueError(f"a {self.coordinate_system.value} box is [lo, hi] with {dims} coordinates each")
            if any(a > b for a, b in zip(*pair)):
                raise ValueError(f"box lower corner above upper corner: {pair}")
        return self

    def to_lps(self) -> "Box":
        """The same box in the DICOM patient frame (RAS and LPS differ by the sign of x and y); a
        2D image-plane box has no patient frame and comes back as it is."""
        if self.coordinate_system in (CoordinateSystem.LPS, CoordinateSystem.IMAGE):
            return self
        lo, hi = self.mm
        flip = (-1.0, -1.0, 1.0)
        a = [v * f for v, f in zip(lo, flip)]
        b = [v * f for v, f in zip(hi, flip)]
        mm = [[min(x, y) for x, y in zip(a, b)], [max(x, y) for x, y in zip(a, b)]]
        return self.model_copy(update={"mm": mm, "coordinate_system": CoordinateSystem.LPS})


class SentenceRef(_Strict):
    text: str
    span: list[int] = Field(min_length=2, max_length=2, description="[start, end) character offsets in the report")
    index: Optional[int] = Field(None, description="sentence number in the parsed report (0-based)")

    @model_validator(mode="after")
    def _span_ordered(self) -> "SentenceRef":
        if not 0 <= self.span[0] <= self.span[1]:
            raise ValueError(f"bad span {self.span}")
        return self


class ReportedAttributes(_Strict):
    """What the report states about the finding (from the parser)."""

    size_mm: list[float] = Field(default_factory=list)
    volume_ml: Optional[float] = None
    hu: Optional[float] = None
    density: Optional[str] = None


class MeasuredAttributes(_Strict):
    """What was measured in the image on the finding's mask."""

    volume_ml: Optional[float] = None
    mean_hu: Optional[float] = None
    long_axis_mm: Optional[float] = None


class Finding(_Strict):
    id: str = Field(description="unique within the result, e.g. 'f3'")
    sentence: Optional[SentenceRef] = Field(None, description="the report sentence it grounds (None: report-blind)")
    kind: Optional[str] = Field(None, description="parser's sentence kind: finding, negative, normal, non_diagnostic")
    organ: Optional[str] = None
    sub_location: list[str] = Field(default_factory=list)
    region: Optional[str] = None
    grounded: bool
    label: Optional[int] = Field(None, ge=1, description="value in the label map; None when not grounded")
    label_name: Optional[str] = None
    boxes: list[Box] = Field(default_factory=list)
    score: Optional[float] = None
    score_name: Optional[str] = Field(None, description="what the score is, e.g. verification_score, confidence")
    reason: Optional[str] = Field(None, description="why a finding is not grounded")
    reported: ReportedAttributes = Field(default_factory=ReportedAttributes)
    measured: MeasuredAttributes = Field(default_factory=MeasuredAttributes)
    extra: dict[str, Any] = Field(default_factory=dict, description="model-specific values (e.g. candidate_entropy)")

    @model_validator(mode="after")
    def _grounded_consistent(self) -> "Finding":
        if self.grounded and (self.label is None or not self.label_name):
            raise ValueError(f"grounded finding {self.id} needs a label and a label_name")
        if not self.grounded and not self.reason:
            raise ValueError(f"finding {self.id} is not grounded and gives no reason")
        return self


class Segment(_Strict):
    """One named value of the label map (what Slicer's segment list and a DICOM SEG show)."""

    label: int = Field(ge=1)
    name: str = Field(min_length=1)
    finding_ids: list[str] = Field(default_factory=list)


class RegionReport(_Strict):
    region: str
    text: str
    label: Optional[int] = Field(None, ge=1)
    label_name: Optional[str] = None
    recognised_area: Optional[str] = None
    matched: Optional[bool] = Field(None, description="the model named the region it was given (Reg2RG RRA check)")


class GroundingResult(_Strict):
    schema_version: Literal["1.0"] = SCHEMA_VERSION
    model: ModelInfo
    coordinate_system: CoordinateSystem = CoordinateSystem.RAS
    image: Optional[ImageGeometry] = None
    findings: list[Finding] = Field(default_factory=list)
    segments: list[Segment] = Field(default_factory=list)
    region_reports: list[RegionReport] = Field(default_factory=list)
    generated_report: Optional[str] = Field(None, description="report text the model wrote (report generation)")

    @model_validator(mode="before")
    @classmethod
    def _frame_of_the_image(cls, data: Any) -> Any:
        """Without an explicit frame, a result is in its image's frame (a radiograph's: 'image')."""
        if isinstance(data, dict) and "coordinate_system" not in data and data.get("image") is not None:
            image = data["image"]
            system = image.coordinate_system if isinstance(image, ImageGeometry) else (image or {}).get("coordinate_system")
            if system is not None:
                data = {**data, "coordinate_system": system}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> "GroundingResult":
        ids = [f.id for f in self.findings]
        if len(set(ids)) != len(ids):
            raise ValueError("finding ids must be unique")
        labels = {s.label: s.name for s in self.segments}
        if len(labels) != len(self.segments) or len(set(labels.values())) != len(labels):
            raise ValueError("segment labels and names must be unique")
        for f in self.findings:
            if f.grounded and labels.get(f.label) != f.label_name:
                raise ValueError(f"finding {f.id}: label {f.label} {f.label_name!r} is not a segment of the label map")
            for b in f.boxes:
                if b.coordinate_system != self.coordinate_system:
                    raise ValueError("every box must be in the result's coordinate system")
        return self

    def label_names(self) -> dict[str, int]:
        """segment name -> label value (the shape of the answer's ``label_names``)."""
        return {s.name: s.label for s in self.segments}

    def finding(self, finding_id: str) -> Finding:
        return next(f for f in self.findings if f.id == finding_id)
