"""Bit pruning: essential-bit accounting, lane groups and projections onto bit constraints."""
