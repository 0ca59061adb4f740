"""Dynamic content: which artwork / trailer / synopsis variant of a title to show each member.

- ``features``: the compact decision context (slot, has played the title, affinity to a variant).
- ``model``: Thompson sampling on a Bayesian linear play-rate model kept as integer sufficient
  statistics per (title, variant); choice probabilities that are logged as propensities.
- ``ope``: off-policy evaluation (IPW, SNIPW, DR with cross-fitted reward model, bootstrap CIs).
- ``store``: the statistics and member state in the ``content`` table, updated exactly once
  per impression from the playback stream (with two evaluation folds and their cells).
- ``evaluation``: what was learned, read back from the table: the learned choice per title and
  the cross-fitted off-policy value of the learned policy vs the logging policy.
"""
