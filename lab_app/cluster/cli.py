"""``zdlab cluster up``: an embedded cluster in a terminal, for poking at it with curl.

Starts the embedded backend, applies the given manifests (files or directories, in order),
waits for the Deployments to roll out, prints the gateway and Service URLs, then prints every
cluster event until Ctrl-C, which stops every process it started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import threading


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("cluster", help="run an embedded cluster in this terminal")
    sub = parser.add_subparsers(dest="cluster_command", metavar="ACTION", required=True)
    up = sub.add_parser("up", help="start, apply manifests, print events until Ctrl-C")
    up.add_argument("-f", "--filename", action="append", default=[], help="manifest file or dir")
    up.add_argument("--gateway-port", type=int, default=0, help="gateway port (0: a free one)")
    up.add_argument("--no-sidecars", action="store_true", help="never inject Istio sidecars")
    up.add_argument(
        "--propagation-delay", type=float, default=1.0, help="kube-proxy lag (s, default 1)"
    )
    up.set_defaults(func=_up)


def _up(args: argparse.Namespace) -> int:
    from lab_app.cluster.embedded import EmbeddedCluster
    from lab_app.manifests.names import split_ref

    async def main() -> None:
        stop = asyncio.Event()
        if threading.current_thread() is threading.main_thread():
            with contextlib.suppress(NotImplementedError, RuntimeError):
                asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)
        options = {
            "gateway_port": args.gateway_port,
            "propagation_delay": args.propagation_delay,
        }
        if args.no_sidecars:
            options["sidecar_injection"] = False
        async with EmbeddedCluster(**options) as cluster:
            events = cluster.subscribe()
            deployments: list[str] = []
            for source in args.filename:
                for ref in await cluster.apply(source):
                    print(f"{ref} applied")
                    kind_name = split_ref(ref)
                    if kind_name and kind_name[0] == "deployment":
                        deployments.append(kind_name[1])
            for name in dict.fromkeys(deployments):
                await cluster.wait_rollout(name, timeout=120)
                print(f"deployment/{name} rolled out")
            await cluster.config_settled()
            print(f"gateway: {cluster.gateway_url()}")
            for name, url in cluster.service_urls().items():
                print(f"service/{name}: {url}")
            print("events follow; Ctrl-C stops the cluster", flush=True)

            async def show() -> None:
                async for event in events:
                    print(event, flush=True)

            printer = asyncio.create_task(show())
            await stop.wait()
            printer.cancel()
        print("zdlab: cluster stopped", file=sys.stderr)

    asyncio.run(main())
    return 0
