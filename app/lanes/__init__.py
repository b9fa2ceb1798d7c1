"""The offline learning lanes: dataset-build -> compile -> eval -> replay -> promote.

    dataset   reviews + recorded outcomes over a window (or seeded synthetic scenarios) ->
              labelled examples with a deterministic train/val/test split and a dataset hash
    compile   a real DSPy optimizer (MIPROv2 light by default, GEPA, BootstrapFewShot) over the
              train/val splits with the Jangar LM -> a ``candidate`` dspy_live artifact
    eval      the candidate (and the active artifact) through the serving runtime (deadline,
              breaker, fallback) and the deterministic gates on the held-out test split ->
              a promotion scorecard stored as evidence
    replay    the recorded requests of a window re-decided by the candidate through the same
              path, each as of its own recorded time -> the decision diff against what was
              served (reject -> submit flips first), stored as evidence
    promote   the registry's evidence-checked promotion (``app.registry.service.promote``)

Every lane run writes one ``lane_outputs`` row whose ``output_hash`` is reproducible: the same
inputs and seed give the same dataset hash and the same artifact hash (a replay's hash is its
report's: a replay of a model at temperature > 0 may differ run to run).
"""
