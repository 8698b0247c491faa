"""Uploaded JSONL corpora: chunked resumable upload, validation state and profile."""
