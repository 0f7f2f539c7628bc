"""The AIProvider controller, split by concern (as external-secrets splits its controllers):

- ``controller``: the kind as the operator layer sees it (pass, deletion, indexes, drift watch)
- ``reconcile``: one pass, step by step
- ``secrets``: the spec's Secret references, named, resolved and checked
- ``verify``: the Bedrock identity with STS (``CredentialsValid``)
- ``drift``: noticing and reporting edits made outside the operator
- ``status``: what a pass reports back
- ``finalize``: deletion
- ``reading``: the one reading of an object's spec (typed spec, provider name, Secret names)
- ``index``: Secret -> objects, provider name -> claims
- ``part``: what the object's record carries for this kind (drift row, hostname peer)
"""

from aigateway_operator.controllers.aiprovider.controller import AIProviderController

__all__ = ["AIProviderController"]
