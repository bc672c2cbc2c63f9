"""Linkage: courses to register persons, the outcome panel and the comparison pool."""
