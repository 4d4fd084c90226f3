"""Source modules: one per outside system (its URLs, paging, retries, and how its records map to rows)."""
