"""The AIGatewayCoderdKey controller, split by concern:

- ``controller``: the kind as the operator layer sees it (pass, deletion, Secret events)
- ``reconcile``: one pass, step by step
- ``secret``: what the key's Secret holds
- ``issue``: issuing a key, and completing an issue a crash interrupted
- ``rotation``: rotation without downtime, retiring the previous key
- ``state``: the key as a pass moves it
- ``status``: conditions and status
- ``finalize``: deletion
- ``part``: what the object's record carries for this kind (written Secret, workload scan)
"""

from aigateway_operator.controllers.gatewaykey.controller import GatewayKeyController

__all__ = ["GatewayKeyController"]
