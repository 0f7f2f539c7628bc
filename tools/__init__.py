"""Development tools kept in the repository, run from its root (``python -m tools.devenv``).

Not part of the product: the wheel and the image hold ``src/aigateway_operator`` only, and an
import-linter contract forbids ``aigateway_operator`` from importing anything here.
"""
