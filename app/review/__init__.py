"""The review step: schemas, executors (heuristic, dspy_live) and the runtime around them."""
