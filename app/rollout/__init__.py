"""Progressive delivery: sticky canary routing, the rollout controller, the post-promotion watch."""
