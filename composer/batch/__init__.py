"""Batch rendering: one song a row of a JSONL/CSV file, resumable, in worker processes or on Ray."""
