"""`charter view`: a local, read-only web viewer for run folders (records, pairs, datasets, evals)."""
