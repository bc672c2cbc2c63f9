"""Publish: the steward view, safe exports, feedback and small-cell control."""
