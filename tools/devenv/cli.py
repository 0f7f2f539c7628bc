"""``python -m tools.devenv up|down|status|build|demo``: the local environment's command line.

Run from the repository root (``tools`` is a directory of the checkout, not an installed
package); the Makefile's ``setup``, ``dev-up``, ``dev-down`` and ``demo`` targets call it.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from tools.devenv.build import ensure_control_plane, ensure_node
from tools.devenv.crds import REPO_CRDS
from tools.devenv.env import DevEnv, default_env_file, state_dir_from_env_file
from tools.devenv.helm import ensure_helm

PROG = "python -m tools.devenv"


def _up(args: argparse.Namespace) -> int:
    env_file: Path = args.env_file
    if env_file.exists():
        try:
            old = DevEnv.load(state_dir_from_env_file(env_file))
            if any(old.status().values()):
                print(
                    f"already up (per {env_file}); run `{PROG} down --env-file {env_file}` first",
                    file=sys.stderr,
                )
                return 1
        except (OSError, ValueError):
            pass
    env_file.parent.mkdir(parents=True, exist_ok=True)
    with_kube = not args.no_kube
    env = DevEnv.up(
        with_kube=with_kube, with_node=with_kube and not args.no_node, crds_dir=REPO_CRDS
    )
    env.write_env_file(env_file)
    t = env.timings
    print(
        f"local environment up in {t.get('total', 0):.1f}s "
        f"(build or cache {t.get('build_or_cache', 0):.1f}s, "
        f"control plane {t.get('control_plane', 0):.1f}s, postgres {t.get('postgres', 0):.1f}s, "
        f"sts {t.get('sts', 0):.1f}s, node {t.get('node', 0):.1f}s)"
    )
    print(f"  kube-apiserver: {env.plane.url if env.plane else 'not started'}")
    host = env.postgres.host if env.postgres else "127.0.0.1"
    print(f"  postgres:       {host}:{env.postgres.port if env.postgres else '?'}")
    print(f"  sts (moto):     {env.sts.endpoint if env.sts else '?'}")
    if env.network is not None:
        print(
            f"  node:           aigw-node, IP {env.network.gateway} on bridge "
            f"{env.network.bridge} (pods: {env.network.subnet})"
        )
    print(f"use it with:  source {env_file}")
    print(f"stop it with: {PROG} down --env-file {env_file}")
    return 0


def _down(args: argparse.Namespace) -> int:
    env_file: Path = args.env_file
    if not env_file.exists():
        print(f"nothing to stop: {env_file} does not exist", file=sys.stderr)
        return 0
    env = DevEnv.load(state_dir_from_env_file(env_file)) if _has_state(env_file) else None
    if env is not None:
        env.down()
    env_file.unlink()
    print("local environment stopped and removed")
    return 0


def _has_state(env_file: Path) -> bool:
    try:
        return (state_dir_from_env_file(env_file) / "state.json").exists()
    except ValueError:
        return False


def _status(args: argparse.Namespace) -> int:
    env_file: Path = args.env_file
    if not env_file.exists() or not _has_state(env_file):
        print("down")
        return 3
    env = DevEnv.load(state_dir_from_env_file(env_file))
    running = env.status()
    for name, alive in sorted(running.items()):
        print(f"{name:24} {'running' if alive else 'STOPPED'}")
    return 0 if running and all(running.values()) else 3


def _build(args: argparse.Namespace) -> int:
    start = time.monotonic()
    bins = ensure_control_plane()
    paths = [bins.kube_apiserver, bins.kube_controller_manager, bins.etcd, ensure_helm()]
    if not args.no_node:
        from tools.devenv.images import ensure_base_image

        node = ensure_node()
        paths += [
            node.kubelet,
            node.kube_scheduler,
            node.containerd_dir,
            node.cni_dir,
            node.pause_image,
            node.runc,
            ensure_base_image(),
        ]
    for path in paths:
        print(f"ready: {path}")
    print(f"build: everything ready in {time.monotonic() - start:.0f}s")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from tools.devenv.demo import run as run_demo

    return run_demo(keep=args.keep)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="local environment: kube-apiserver+etcd, a node, Postgres 15, STS; the demo",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func, help_text in (
        ("up", _up, "start everything (and a node) and write an env file"),
        ("down", _down, "stop everything started by `up` and remove its files"),
        ("status", _status, "say what runs"),
        ("build", _build, "build (or find cached) the control plane, the node's parts, helm"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument(
            "--env-file",
            type=Path,
            default=default_env_file(),
            help="shell file of `export` lines (default: .dev/env)",
        )
        if name == "up":
            p.add_argument(
                "--no-kube",
                action="store_true",
                help="only Postgres and STS (no control plane build)",
            )
        if name in ("up", "build"):
            p.add_argument(
                "--no-node",
                action="store_true",
                help="no node (kubelet, containerd): the control plane alone, on loopback",
            )
        p.set_defaults(func=func)
    demo_p = sub.add_parser("demo", help="the whole product on the local environment")
    demo_p.add_argument("--keep", action="store_true", help="keep it running until Ctrl-C")
    demo_p.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))
