"""Concord's data model, split by domain; import from here."""

from annotate.models.candidates import Candidate, CandidateSet, RunStatus, Strategy
from annotate.models.comparisons import (
    Assignment,
    AssignmentState,
    Choice,
    Comparison,
    ComparisonKind,
    ComparisonStatus,
    Judgment,
    Resolution,
    ResolutionMethod,
    Source,
    Strength,
)
from annotate.models.exports import ExportFormat, ExportJob
from annotate.models.generation import GenerationRun
from annotate.models.judging import (
    CandidateScore,
    Demonstration,
    DemonstrationPool,
    DemonstrationSource,
    JudgeRun,
    JudgeTask,
    PrincipleVerdict,
    RankingMethod,
    Route,
    RoutingDecision,
    SetAgreement,
    SetRanking,
    SpaPair,
)
from annotate.models.projects import Membership, Principle, Project, Role
from annotate.models.prompts import Prompt
from annotate.models.specs import GeneratorSpec, JudgeSpec, ModelKind

__all__ = [
    "Assignment",
    "AssignmentState",
    "Candidate",
    "CandidateSet",
    "Choice",
    "Comparison",
    "ComparisonKind",
    "ComparisonStatus",
    "ExportFormat",
    "ExportJob",
    "GenerationRun",
    "GeneratorSpec",
    "JudgeSpec",
    "Judgment",
    "Membership",
    "ModelKind",
    "Principle",
    "Project",
    "Prompt",
    "Resolution",
    "ResolutionMethod",
    "Role",
    "RunStatus",
    "Source",
    "Strategy",
    "Strength",
]

# AI judging (issue 4)
__all__ += [
    "CandidateScore",
    "Demonstration",
    "DemonstrationPool",
    "DemonstrationSource",
    "JudgeRun",
    "JudgeTask",
    "PrincipleVerdict",
    "RankingMethod",
    "Route",
    "RoutingDecision",
    "SetAgreement",
    "SetRanking",
    "SpaPair",
]
