"""Reconcile pipelines, one per kind: plain values in, an Outcome out; no kopf below here."""
