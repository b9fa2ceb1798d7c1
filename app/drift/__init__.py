"""Drift monitoring: is the served artifact still seeing the world, and behaving, as it did when
it became ACTIVE?

- ``stats``: pure statistics (PSI with reference-quantile bins, KS, chi-square on pooled
  categories, proportion and quantile tests, Welch on returns) and the family-wise correction
  (weighted Holm) that keeps a whole run's false-alarm rate at ``alpha``. No I/O, no clock.
- ``features``: what a stored review contributes to a window (pure).
- ``repository``: the SQL (frozen references, ``model_drift`` rows, acknowledgements, the
  streamed current window).
- ``monitor``: one run (freeze the reference when missing, compare, store, alert, optionally
  roll back) and the promotion guard; scheduled with ``app.leases.SingletonLoop``.
"""
