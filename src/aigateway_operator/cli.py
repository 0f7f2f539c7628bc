"""``aigateway-operator`` command line: ``run`` (the operator) and ``dev up|down|status|build``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from aigateway_operator.devenv.build import ensure_control_plane
from aigateway_operator.devenv.env import DevEnv, default_env_file, state_dir_from_env_file
from aigateway_operator.devenv.helm import ensure_helm


def _repo_crds() -> Path | None:
    """``crds/`` of a source checkout (the dev environment is a development tool)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").exists() and (parent / "crds").is_dir():
            return parent / "crds"
    cwd = Path.cwd() / "crds"
    return cwd if cwd.is_dir() else None


def _dev_up(args: argparse.Namespace) -> int:
    env_file: Path = args.env_file
    if env_file.exists():
        try:
            old = DevEnv.load(state_dir_from_env_file(env_file))
            if any(old.status().values()):
                print(
                    f"already up (per {env_file}); run `dev down --env-file {env_file}` first",
                    file=sys.stderr,
                )
                return 1
        except (OSError, ValueError):
            pass
    env_file.parent.mkdir(parents=True, exist_ok=True)
    env = DevEnv.up(with_kube=not args.no_kube, crds_dir=_repo_crds())
    env.write_env_file(env_file)
    t = env.timings
    print(
        f"local environment up in {t.get('total', 0):.1f}s "
        f"(control plane {t.get('control_plane', 0):.1f}s, postgres {t.get('postgres', 0):.1f}s, "
        f"sts {t.get('sts', 0):.1f}s)"
    )
    print(f"  kube-apiserver: {env.plane.url if env.plane else 'not started'}")
    print(f"  postgres:       127.0.0.1:{env.postgres.port if env.postgres else '?'}")
    print(f"  sts (moto):     {env.sts.endpoint if env.sts else '?'}")
    print(f"use it with:  source {env_file}")
    print(f"stop it with: aigateway-operator dev down --env-file {env_file}")
    return 0


def _dev_down(args: argparse.Namespace) -> int:
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


def _dev_status(args: argparse.Namespace) -> int:
    env_file: Path = args.env_file
    if not env_file.exists() or not _has_state(env_file):
        print("down")
        return 3
    env = DevEnv.load(state_dir_from_env_file(env_file))
    running = env.status()
    for name, alive in sorted(running.items()):
        print(f"{name:24} {'running' if alive else 'STOPPED'}")
    return 0 if running and all(running.values()) else 3


def _dev_build(args: argparse.Namespace) -> int:
    bins = ensure_control_plane()
    for path in (bins.kube_apiserver, bins.kube_controller_manager, bins.etcd, ensure_helm()):
        print(f"ready: {path}")
    return 0


def _limit_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's malloc arenas (as ``MALLOC_ARENA_MAX=2`` would): the kubernetes client and
    boto3 run in worker threads, and each thread's arena keeps freed memory for itself; the
    benchmark measured a third of the operator's RSS in them. No-op outside glibc."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name:
        return
    try:
        libc = ctypes.CDLL(name)
        m_arena_max = -8  # from glibc's malloc.h
        libc.mallopt(m_arena_max, arenas)
    except (OSError, AttributeError):
        return


def _run(args: argparse.Namespace) -> int:
    import asyncio

    from aigateway_operator.config import ConfigError, Settings
    from aigateway_operator.operator import main as operator_main

    try:
        settings = Settings()
    except (ConfigError, ValueError) as exc:
        # pydantic hides inputs (hide_input_in_errors); our own messages name variables only.
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    _limit_malloc_arenas()
    return asyncio.run(operator_main(settings, verbose=args.verbose))


def _demo(args: argparse.Namespace) -> int:
    from aigateway_operator.devenv.demo import run as run_demo

    return run_demo(keep=args.keep)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aigateway-operator", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="run the operator (configured by AIGW_* variables)")
    run_p.add_argument("--verbose", action="store_true", help="debug logging")
    run_p.set_defaults(func=_run)
    demo_p = sub.add_parser("demo", help="the whole product on the local environment")
    demo_p.add_argument("--keep", action="store_true", help="keep it running until Ctrl-C")
    demo_p.set_defaults(func=_demo)
    dev = sub.add_parser("dev", help="local environment: kube-apiserver+etcd, Postgres 15, STS")
    dev_sub = dev.add_subparsers(dest="dev_command", required=True)
    for name, func, help_text in (
        ("up", _dev_up, "start everything on loopback and write an env file"),
        ("down", _dev_down, "stop everything started by `up` and remove its files"),
        ("status", _dev_status, "say what runs"),
        ("build", _dev_build, "build (or find cached) the control plane binaries and helm"),
    ):
        p = dev_sub.add_parser(name, help=help_text)
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
        p.set_defaults(func=func)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
