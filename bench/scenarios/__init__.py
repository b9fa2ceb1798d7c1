"""One module per benchmark scenario; each has ``run(ctx) -> dict`` (the scenario's JSON)."""
