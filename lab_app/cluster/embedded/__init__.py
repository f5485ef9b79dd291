"""The embedded backend: pods as real processes, a real Envoy as Istio's data plane.

``EmbeddedCluster`` (``cluster.py``, a facade) implements ``lab_app.cluster.Cluster``;
``connect("embedded")`` starts one. The pieces: ``options.py`` (the start options),
``store.py`` + ``staging.py`` + ``weights.py`` (objects, staged apply/delete/set_weights),
``images.py`` (content-addressed code snapshots), ``specs.py`` (the Deployment/pod fields with
Kubernetes' defaults), ``kubelet.py`` + ``pods.py`` + ``probes.py`` + ``termination.py`` +
``exits.py`` + ``podenv.py`` + ``sidecar.py`` (the kubelet), ``deployments.py`` + ``rollout.py``
(Deployment/ReplicaSet controllers), ``control.py`` (their loop), ``endpoints.py`` (endpoints
controller), ``proxies.py`` + ``dataplane.py`` + ``propagation.py`` + ``settle.py`` (kube-proxy
and istiod stand-ins), ``procs.py`` + ``reaper.py`` (no process outlives its owner), ``envoy/``
(the Envoy layer).
"""

from __future__ import annotations

from lab_app.cluster.embedded.cluster import EmbeddedCluster

__all__ = ["EmbeddedCluster"]
