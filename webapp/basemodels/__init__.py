"""Registered base models: a local directory or a hub id already in the local cache."""
