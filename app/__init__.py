"""trade-review: pre-trade review service (advisory LLM review behind deterministic gates)."""
