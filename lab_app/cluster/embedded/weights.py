"""``set_weights`` for the embedded backend: the shared rule, and the shares it reports.

Make before break, the complete-split semantics and the error each refusal raises live in one
pure function both backends call, ``lab_app.manifests.routing.reweight``; ``staging.Stager``
checks its result with the rest of the objects, commits it and emits ``WeightsChanged``.
"""

from __future__ import annotations

from lab_app.manifests import virtualservice_shares as route_shares
from lab_app.manifests.routing import reweight, validate_weights

__all__ = ["reweight", "route_shares", "validate_weights"]
