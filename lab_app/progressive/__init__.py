"""Progressive delivery: an SLO-gated cutover with automatic rollback (Flagger / Argo style).

``progressive_cutover(cluster, vs, stable, canary, load=run)`` moves traffic step by step and
lets measurements decide; ``start_progressive(...)`` does it in the background with manual
gates (pause, resume, promote, abort). The modules, by job:

* ``spec``: the parameters, validated (``make_spec``, ``build_steps``, ``CutoverSpec``);
* ``controller``: the loop that sets weights, judges windows and decides;
* ``start``: ``progressive_cutover``, and ``start_progressive`` with its handle;
* ``decisions``: what it decided and how it ended (``Action``, ``Outcome``, ``Phase``,
  ``Decision``, ``Analysis``, ``CutoverResult``);
* ``checks`` / ``analysis``: the metrics, thresholds and how a window is measured;
* ``routing`` / ``idle``: what the gateway routes, and when a subset is idle;
* ``gates``: pause/resume/promote/abort; ``ports``: the optional cluster capability.
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
from lab_app.progressive.decisions import (
    Action,
    Analysis,
    CutoverResult,
    Decision,
    Outcome,
    Phase,
)
from lab_app.progressive.gates import Gate
from lab_app.progressive.routing import Routing, read_routing
from lab_app.progressive.spec import DEFAULT_STEPS, CutoverSpec, build_steps, make_spec
from lab_app.progressive.start import ProgressiveCutover, progressive_cutover, start_progressive

__all__ = [
    "BUILTIN",
    "DEFAULT_CHECKS",
    "DEFAULT_STEPS",
    "Action",
    "Analysis",
    "Check",
    "CheckResult",
    "CutoverResult",
    "CutoverSpec",
    "Decision",
    "Gate",
    "LoadWindow",
    "Outcome",
    "Phase",
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
