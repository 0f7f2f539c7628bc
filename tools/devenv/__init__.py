"""The local environment: control plane build and start, Postgres 15, moto STS, helm, the demo.

A development tool, not the product: ``python -m tools.devenv up|down|status|build|demo``
from the repository root (the Makefile's ``setup``, ``dev-up``, ``dev-down`` and ``demo``), and
the pytest session fixtures and benchmarks import it. It imports the product where it needs
to (the demo masks and decrypts with it), never the other way round.
"""
