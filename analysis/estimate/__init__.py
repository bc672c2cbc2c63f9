"""Effect estimation: before/after, matching, DiD and event study, staggered ATT, power."""
