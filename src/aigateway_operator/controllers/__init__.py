"""The controllers of both kinds, and what they share. No kopf here: the operator layer
(``aigateway_operator.operator``) owns every kopf handler and calls into these.

- ``shared``: object identity, pass outcome, the store-error -> condition rule, the
  outcome -> metrics rule
- ``runner``: one object's life between kopf's daemon and its kind's pass
- ``record``: everything kept in memory about one object (one record, one forget path)
- ``wiring``: what every pass needs, built once at start
- ``aiprovider``, ``gatewaykey``: one package per kind, split by concern
"""
