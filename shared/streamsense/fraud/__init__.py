"""Fraud: streaming features per entity, rules, a supervised model stored as data, decisions
with reasons, shadow scoring, training from labeled exports, and investigation cases.

- ``windows``: the vectorized sliding-window kernels (the one definition of every window).
- ``state``: per-entity event logs, their DynamoDB layout, idempotency and writer slots.
- ``features``: payment features (handbook 14 + extras) and account-activity features, with
  the Lambda driver (``StreamingFeatures``) and the offline driver.
- ``rules``: impossible travel, concurrent streams, credential stuffing, card testing,
  sensitive change from a new device in a new country.
- ``model`` / ``registry``: trees exported to npz + manifest (sha256), live and candidate.
- ``decisions`` / ``scoring``: the decision policy and fraud_scorer's domain call.
- ``training``: the ``train`` command and fraud_trainer's domain call.
- ``investigation``: cases and analyst verdicts as labels.
- ``history``: the labeled-history export format (the handbook's columns) and its events.
"""
