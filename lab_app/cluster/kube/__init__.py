"""The kubernetes backend: ``KubeCluster`` drives a real cluster (kind/minikube + Istio).

Modules: ``client`` (kubeconfig, probe), ``resources`` (manifest -> API request),
``rollout`` (kubectl's rollout status), ``eventmap`` (Kubernetes happenings -> EventKind),
``watches`` (watch threads, event hub), ``gateway`` (where load goes), ``weights``
(make-before-break VirtualService patch), ``images`` (build + kind/minikube load),
``proxy`` (istioctl proxy-config / Envoy admin), ``pods`` (PodInfo), ``cluster``.
"""

from lab_app.cluster.kube.cluster import KubeCluster

__all__ = ["KubeCluster"]
