"""The embedded backend: pods as real processes, a real Envoy as Istio's data plane.

``EmbeddedCluster`` (``cluster.py``) implements ``lab_app.cluster.Cluster``; ``connect("embedded")``
starts one. The pieces: ``images.py`` (content-addressed code snapshots), ``specs.py`` (the
Deployment/pod fields with Kubernetes' defaults), ``pods.py`` + ``probes.py`` + ``sidecar.py``
(the kubelet), ``deployments.py`` (Deployment/ReplicaSet controllers), ``propagation.py`` +
``dataplane.py`` (endpoints controller, kube-proxy and istiod stand-ins), ``procs.py`` +
``reaper.py`` (no process outlives its owner), ``envoy/`` (the Envoy layer).
"""

from __future__ import annotations

from lab_app.cluster.embedded.cluster import EmbeddedCluster

__all__ = ["EmbeddedCluster"]
