"""``istioctl proxy-config`` for both backends: rows from an Envoy admin dump.

Both backends show a proxy's configuration the same way: the embedded one reads its own
Envoy's ``/config_dump`` and ``/clusters``, the kubernetes one the same JSON fetched from a
pod's Envoy. The columns follow ``istioctl proxy-config routes|clusters|endpoints|listeners``
(routes also show each destination's weight and share, what the lessons are about).

Nothing here is backend-specific, so it lives beside ``base.py`` (whose ``proxy_config``
takes a ``ProxyConfigKind``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

ProxyConfigKind = Literal["routes", "clusters", "endpoints", "listeners"]

COLUMNS: dict[str, list[str]] = {
    "routes": [
        "NAME",
        "VHOST NAME",
        "DOMAINS",
        "MATCH",
        "DESTINATIONS",
        "RETRIES",
        "VIRTUAL SERVICE",
    ],
    "clusters": ["SERVICE FQDN", "PORT", "SUBSET", "DIRECTION", "TYPE", "DESTINATION RULE"],
    "endpoints": ["ENDPOINT", "STATUS", "OUTLIER CHECK", "CLUSTER", "POD"],
    "listeners": ["ADDRESSES", "PORT", "MATCH", "DESTINATION"],
}


@dataclass
class ProxyConfigView:
    """Rows like ``istioctl proxy-config KIND`` prints; ``table()`` renders them as text."""

    kind: str
    rows: list[dict[str, Any]]

    @property
    def columns(self) -> list[str]:
        return COLUMNS[self.kind]

    def table(self) -> str:
        cols = self.columns
        cells = [[str(r.get(c, "")) for c in cols] for r in self.rows]
        widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(cols)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip()]
        for row in cells:
            lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        return self.table()


def _configs(dump: Mapping[str, Any], type_suffix: str) -> list[Mapping[str, Any]]:
    return [c for c in dump.get("configs", []) if str(c.get("@type", "")).endswith(type_suffix)]


def _match_text(match: Mapping[str, Any]) -> str:
    if "path" in match:
        text = str(match["path"])
    elif "prefix" in match:
        text = match["prefix"] + "*"
    elif "safe_regex" in match:
        text = "~" + match["safe_regex"].get("regex", "")
    else:
        text = "?"
    for h in match.get("headers", []):
        for k, v in (h.get("string_match") or {"present": ""}).items():
            value = v.get("regex", "") if isinstance(v, dict) else v
            text += f" [{h.get('name')} {k.replace('safe_regex', 'regex')} {value}]"
    return text


def _destinations_text(action: Mapping[str, Any]) -> str:
    if "cluster" in action:
        return str(action["cluster"])
    clusters = action.get("weighted_clusters", {}).get("clusters", [])
    total = sum(int(c.get("weight", 0)) for c in clusters) or 1
    return ", ".join(
        f"{c['name']} {int(c.get('weight', 0))} ({100 * int(c.get('weight', 0)) / total:.0f}%)"
        for c in clusters
    )


def _route_config_rows(rc: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for vh in rc.get("virtual_hosts", []):
        for r in vh.get("routes", []):
            action = r.get("route", {})
            config = (
                r.get("metadata", {}).get("filter_metadata", {}).get("istio", {}).get("config", "")
            )
            vs = ""
            if "/virtual-service/" in config:
                ns = config.split("/namespaces/")[1].split("/")[0]
                vs = f"{config.rsplit('/', 1)[1]}.{ns}"
            retry = action.get("retry_policy")
            retries = (
                f"{retry.get('num_retries', 1)} on {retry.get('retry_on', '')}" if retry else "none"
            )
            rows.append(
                {
                    "NAME": rc.get("name", ""),
                    "VHOST NAME": vh.get("name", ""),
                    "DOMAINS": ",".join(vh.get("domains", [])),
                    "MATCH": _match_text(r.get("match", {})),
                    "DESTINATIONS": _destinations_text(action),
                    "RETRIES": retries,
                    "VIRTUAL SERVICE": vs,
                    "weights": {
                        c["name"]: int(c.get("weight", 0))
                        for c in action.get("weighted_clusters", {}).get("clusters", [])
                    }
                    or ({action["cluster"]: 100} if "cluster" in action else {}),
                }
            )
    return rows


def _dump_listeners(dump: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    out = []
    for section in _configs(dump, "ListenersConfigDump"):
        for item in section.get("static_listeners", []) or []:
            out.append(item.get("listener", {}))
        for item in section.get("dynamic_listeners", []) or []:
            listener = (item.get("active_state") or item.get("warming_state") or {}).get("listener")
            if listener:
                out.append(listener)
    return out


def proxy_config_view(
    config_dump: Mapping[str, Any], kind: ProxyConfigKind = "routes"
) -> ProxyConfigView:
    """Turn an admin ``/config_dump`` (or ``/clusters?format=json`` for endpoints) into rows.

    For ``endpoints`` pass ``await admin.clusters()`` (it has health and outlier flags) or a
    config dump taken with ``include_eds``.
    """
    if kind not in COLUMNS:
        raise ValueError(f"kind {kind!r} is not one of {', '.join(COLUMNS)}")
    rows: list[dict[str, Any]] = []
    if kind == "routes":
        for section in _configs(config_dump, "RoutesConfigDump"):
            for item in [
                *(section.get("static_route_configs") or []),
                *(section.get("dynamic_route_configs") or []),
            ]:
                rows.extend(_route_config_rows(item.get("route_config", {})))
        for listener in _dump_listeners(config_dump):
            for chain in listener.get("filter_chains", []):
                for flt in chain.get("filters", []):
                    rc = flt.get("typed_config", {}).get("route_config")
                    if rc:
                        rows.extend(_route_config_rows(rc))
    elif kind == "clusters":
        for section in _configs(config_dump, "ClustersConfigDump"):
            items = [
                *(section.get("static_clusters") or []),
                *(section.get("dynamic_active_clusters") or []),
            ]
            for item in items:
                c = item.get("cluster", {})
                name = str(c.get("name", ""))
                parts = name.split("|")
                if len(parts) == 4:
                    direction, port, subset, fqdn = parts
                else:
                    direction, port, subset, fqdn = "", "-", "", name
                config = (
                    c.get("metadata", {})
                    .get("filter_metadata", {})
                    .get("istio", {})
                    .get("config", "")
                )
                dr = ""
                if "/destination-rule/" in config:
                    ns = config.split("/namespaces/")[1].split("/")[0]
                    dr = f"{config.rsplit('/', 1)[1]}.{ns}"
                rows.append(
                    {
                        "SERVICE FQDN": fqdn or name,
                        "PORT": port,
                        "SUBSET": subset or "-",
                        "DIRECTION": direction or "-",
                        "TYPE": c.get("type", "STATIC"),
                        "DESTINATION RULE": dr,
                        "name": name,
                    }
                )
        rows.sort(key=lambda r: (r["SERVICE FQDN"], str(r["PORT"]), r["SUBSET"]))
    elif kind == "endpoints":
        if "cluster_statuses" in config_dump:
            for cs in config_dump.get("cluster_statuses", []):
                for hs in cs.get("host_statuses", []):
                    sock = hs.get("address", {}).get("socket_address", {})
                    health = hs.get("health_status", {})
                    outlier_failed = bool(health.get("failed_outlier_check"))
                    eds = health.get("eds_health_status", "HEALTHY")
                    healthy = (
                        eds in ("HEALTHY", "UNKNOWN")
                        and not outlier_failed
                        and not health.get("failed_active_health_check")
                    )
                    rows.append(
                        {
                            "ENDPOINT": f"{sock.get('address')}:{sock.get('port_value')}",
                            "STATUS": "HEALTHY" if healthy else "UNHEALTHY",
                            "OUTLIER CHECK": "FAILED" if outlier_failed else "OK",
                            "CLUSTER": cs.get("name", ""),
                            "POD": hs.get("hostname", ""),
                        }
                    )
        else:
            for section in _configs(config_dump, "EndpointsConfigDump"):
                items = [
                    *(section.get("static_endpoint_configs") or []),
                    *(section.get("dynamic_endpoint_configs") or []),
                ]
                for item in items:
                    cfg = item.get("endpoint_config", {})
                    for locality in cfg.get("endpoints", []):
                        for lbe in locality.get("lb_endpoints", []):
                            ep = lbe.get("endpoint", {})
                            sock = ep.get("address", {}).get("socket_address", {})
                            rows.append(
                                {
                                    "ENDPOINT": f"{sock.get('address')}:{sock.get('port_value')}",
                                    "STATUS": lbe.get("health_status", "HEALTHY"),
                                    "OUTLIER CHECK": "OK",
                                    "CLUSTER": cfg.get("cluster_name", ""),
                                    "POD": ep.get("hostname", ""),
                                }
                            )
        rows.sort(key=lambda r: (r["CLUSTER"], r["ENDPOINT"]))
    else:
        for listener in _dump_listeners(config_dump):
            sock = listener.get("address", {}).get("socket_address", {})
            for chain in listener.get("filter_chains", []):
                for flt in chain.get("filters", []):
                    cfg = flt.get("typed_config", {})
                    if "rds" in cfg:
                        dest = f"Route: {cfg['rds'].get('route_config_name')}"
                    elif "route_config" in cfg:
                        dest = f"Inline Route: {cfg['route_config'].get('name')}"
                    elif "cluster" in cfg:
                        dest = f"Cluster: {cfg['cluster']}"
                    else:
                        dest = flt.get("name", "")
                    rows.append(
                        {
                            "ADDRESSES": sock.get("address", ""),
                            "PORT": sock.get("port_value", ""),
                            "MATCH": "ALL",
                            "DESTINATION": dest,
                            "name": listener.get("name", ""),
                        }
                    )
    return ProxyConfigView(kind=kind, rows=rows)
