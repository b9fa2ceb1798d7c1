"""The review audit trail (``llm_decision_reviews``): repository only; the pipeline writes it."""
