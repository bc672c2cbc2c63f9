"""Ingest: read and validate the sites' quarterly files, pseudonymise CPR, consolidate courses."""
