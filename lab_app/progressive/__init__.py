"""Progressive delivery: an SLO-gated cutover with automatic rollback (Flagger / Argo style).

``progressive_cutover(cluster, vs, stable, canary, load=run)`` moves traffic step by step and
lets measurements decide; ``start_progressive(...)`` does it in the background with manual
gates (pause, resume, promote, abort). See ``controller`` for the algorithm, ``checks`` for
the metrics and thresholds, ``analysis`` for how a window is measured.
"""

from lab_app.progressive.analysis import (
    LoadWindow,
    SubsetCounters,
    Window,
    is_failure,
    pass_probability,
    percentile,
    summarize,
    window_records,
)
from lab_app.progressive.checks import (
    BUILTIN,
    DEFAULT_CHECKS,
    Check,
    CheckResult,
    evaluate,
    parse_check,
    parse_checks,
)
from lab_app.progressive.controller import (
    DEFAULT_STEPS,
    Analysis,
    CutoverResult,
    CutoverSpec,
    Decision,
    ProgressiveCutover,
    build_steps,
    make_spec,
    progressive_cutover,
    start_progressive,
)
from lab_app.progressive.gates import Gate
from lab_app.progressive.routing import Routing, read_routing

__all__ = [
    "BUILTIN",
    "DEFAULT_CHECKS",
    "DEFAULT_STEPS",
    "Analysis",
    "Check",
    "CheckResult",
    "CutoverResult",
    "CutoverSpec",
    "Decision",
    "Gate",
    "LoadWindow",
    "ProgressiveCutover",
    "Routing",
    "SubsetCounters",
    "Window",
    "build_steps",
    "evaluate",
    "is_failure",
    "make_spec",
    "parse_check",
    "parse_checks",
    "pass_probability",
    "percentile",
    "progressive_cutover",
    "read_routing",
    "start_progressive",
    "summarize",
    "window_records",
]
