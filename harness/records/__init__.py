"""What a run leaves behind: the typed schema, atomic result files, provenance, imported runs
and the aggregation of per-sample scores into metrics."""
