"""``aigateway-operator`` command line: ``run`` (the operator) and ``--version``.

The local environment and the demo are a development tool of the repository
(``python -m tools.devenv``), not part of this package.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
from collections.abc import Sequence

from aigateway_operator import __version__


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

    from pydantic import ValidationError

    from aigateway_operator.config import ConfigError, Settings
    from aigateway_operator.kube.config import NoKubeConfiguration
    from aigateway_operator.operator import main as operator_main

    try:
        settings = Settings()
        settings.require_database_url()
    except ValidationError as exc:
        # One line naming each variable; pydantic hides the inputs (hide_input_in_errors).
        problems = "; ".join(
            f"AIGW_{str(e['loc'][0]).upper()}: {e['msg']}" if e["loc"] else e["msg"]
            for e in exc.errors()
        )
        print(f"configuration error: {problems}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    _limit_malloc_arenas()
    try:
        return asyncio.run(operator_main(settings, verbose=args.verbose))
    except NoKubeConfiguration as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2


def version() -> str:
    """The installed distribution's version; ``__version__`` where there is no distribution
    metadata (the image copies the package into site-packages without it)."""
    try:
        return importlib.metadata.version("aigateway-operator")
    except importlib.metadata.PackageNotFoundError:
        return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aigateway-operator", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="run the operator (configured by AIGW_* variables)")
    run_p.add_argument("--verbose", action="store_true", help="debug logging")
    run_p.set_defaults(func=_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
