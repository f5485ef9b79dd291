"""Names the lab's parts agree on: the demo's Service, ``kind/name`` references, short hosts.

Both backends, the experiments and the progressive controller read and write these; one
definition each keeps them from drifting apart (two ``kind/name`` regexes once accepted
different names).

Hosts have two meanings that must not be confused:

- :func:`short_name` is the Service name of any host form (``svc``, ``svc.ns``,
  ``svc.ns.svc.cluster.local`` -> ``svc``). The lab keeps every object in one namespace,
  so that is how it matches a VirtualService destination to its DestinationRule.
- :func:`local_name` is the host as seen from one namespace: the Service name when the host
  is in that namespace (or bare), else the host unchanged, so ``svc.other`` is not taken
  for ``svc``. The kubernetes backend uses it, since a real cluster has other namespaces.
"""

from __future__ import annotations

import re

#: The demo's Deployment, Service, VirtualService and DestinationRule share this name
#: (``manifests/``); ``service_url()`` and the experiments default to it.
DEFAULT_SERVICE = "zero-downtime-rollingupdate"

# kind (a short name, a kind, a plural, or ``plural.group``) / an RFC 1123 subdomain name
_REF = re.compile(r"^([A-Za-z][A-Za-z0-9.]*)/([a-z0-9]([-a-z0-9.]*[a-z0-9])?)$")
_FILE_SUFFIXES = (".yaml", ".yml", ".json")


def format_ref(kind: str, name: str) -> str:
    """``("Deployment", "demo")`` -> ``"deployment/demo"``, as ``kubectl`` and events write it."""
    return f"{kind.lower()}/{name}"


def split_ref(text: str) -> tuple[str, str] | None:
    """``"deploy/demo"`` -> ``("deploy", "demo")``: the kind as written (an alias, not
    resolved: each backend knows its own kinds) and the name.

    ``None`` when ``text`` is not of that form or names a file (``istio/gateway.yaml``),
    so the caller treats it as a path or YAML text.
    """
    text = text.strip()
    match = _REF.match(text)
    if not match or text.endswith(_FILE_SUFFIXES):
        return None
    return match.group(1), match.group(2)


def short_name(host: str) -> str:
    """The Service name of a host: ``svc``, ``svc.ns``, ``svc.ns.svc.cluster.local`` -> ``svc``."""
    return host.split(".", 1)[0]


def local_name(host: str, namespace: str) -> str:
    """The host as seen from ``namespace``: its Service name when bare or in ``namespace``,
    else the host unchanged (``svc.other`` stays ``svc.other``)."""
    parts = host.split(".")
    if len(parts) >= 2 and parts[1] != namespace:
        return host  # another namespace
    return parts[0]
