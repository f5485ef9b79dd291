"""Moving traffic between subsets by editing a VirtualService, make before break.

A VirtualService that routes to a subset its DestinationRule lacks makes the gateway
answer 503 (Envoy flag NC, no cluster) until the subset appears. So before any weight
becomes positive, the subset must already exist: ``weights_patch`` checks that against
the DestinationRules of the route's host and refuses otherwise, naming the missing
subset. Subsets given weight 0 stay in the route only if they exist (0/100 is valid;
weights are relative). The result is a JSON merge patch of ``spec.http`` that carries
the VirtualService's resourceVersion, so a concurrent edit makes the patch fail with
409 instead of being silently overwritten.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from lab_app.errors import ConfigError, LabError
from lab_app.manifests.names import local_name


def validate_weights(weights: Mapping[str, int]) -> dict[str, int]:
    """Integers 0..100 by subset name, at least one positive."""
    if not weights:
        raise ConfigError("weights: give at least one subset, e.g. {'version-v1': 90, ...}")
    checked: dict[str, int] = {}
    for subset, weight in weights.items():
        if not isinstance(subset, str) or not subset:
            raise ConfigError(f"weights: subset names must be non-empty strings, not {subset!r}")
        if isinstance(weight, bool) or not isinstance(weight, int):
            raise ConfigError(f"weights[{subset!r}] must be an integer 0..100, not {weight!r}")
        if not 0 <= weight <= 100:
            raise ConfigError(f"weights[{subset!r}] = {weight} is outside 0..100")
        checked[subset] = weight
    if not any(checked.values()):
        raise ConfigError("weights: all weights are 0, which would route nowhere")
    return checked


def destination_hosts(virtualservice: Mapping[str, Any]) -> list[str]:
    hosts: list[str] = []
    for http in (virtualservice.get("spec") or {}).get("http") or []:
        for route in http.get("route") or []:
            host = (route.get("destination") or {}).get("host")
            if host and host not in hosts:
                hosts.append(host)
    return hosts


def subsets_by_host(
    destinationrules: list[Mapping[str, Any]], namespace: str
) -> dict[str, dict[str, str]]:
    """short host -> {subset name: DestinationRule name}."""
    result: dict[str, dict[str, str]] = {}
    for rule in destinationrules:
        spec = rule.get("spec") or {}
        host = local_name(str(spec.get("host", "")), namespace)
        name = (rule.get("metadata") or {}).get("name", "?")
        for subset in spec.get("subsets") or []:
            if subset.get("name"):
                result.setdefault(host, {})[subset["name"]] = name
    return result


def weights_patch(
    virtualservice: Mapping[str, Any],
    destinationrules: list[Mapping[str, Any]],
    weights: Mapping[str, int],
    namespace: str,
) -> dict[str, Any]:
    """The merge patch that sets ``weights`` on every HTTP route of ``virtualservice``.

    Each route keeps its destination's host and port and any other fields; a subset not
    yet in the route gets a copy of the route's first destination with that subset.
    """
    checked = validate_weights(weights)
    vs_name = (virtualservice.get("metadata") or {}).get("name", "?")
    http_routes = copy.deepcopy((virtualservice.get("spec") or {}).get("http") or [])
    if not http_routes:
        raise LabError(f"virtualservice/{vs_name} has no spec.http routes to weight")
    known = subsets_by_host(destinationrules, namespace)
    for index, http in enumerate(http_routes):
        routes = http.get("route") or []
        if not routes:
            raise LabError(f"virtualservice/{vs_name} spec.http[{index}] has no route")
        template = routes[0]
        host = (template.get("destination") or {}).get("host", "")
        available = known.get(local_name(host, namespace), {})
        missing = [s for s, w in checked.items() if w > 0 and s not in available]
        if missing:
            rules = sorted(set(available.values())) or ["no DestinationRule for this host"]
            raise LabError(
                f"subset {', '.join(repr(m) for m in missing)} is not defined by the "
                f"DestinationRule of host {host!r} ({', '.join(rules)}; subsets: "
                f"{', '.join(sorted(available)) or 'none'}): add it to the DestinationRule "
                f"before routing to it (make before break)"
            )
        by_subset = {(r.get("destination") or {}).get("subset"): r for r in routes}
        new_routes = []
        for subset, weight in checked.items():
            if weight == 0 and subset not in available:
                continue
            route = copy.deepcopy(by_subset.get(subset) or template)
            route.setdefault("destination", {})["subset"] = subset
            route["weight"] = weight
            new_routes.append(route)
        http["route"] = new_routes
    patch: dict[str, Any] = {"spec": {"http": http_routes}}
    resource_version = (virtualservice.get("metadata") or {}).get("resourceVersion")
    if resource_version:
        patch["metadata"] = {"resourceVersion": resource_version}
    return patch
