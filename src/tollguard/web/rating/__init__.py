"""Rating app: rate cards (sell and cost) and their per-prefix rates."""
