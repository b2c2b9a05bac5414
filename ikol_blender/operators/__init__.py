"""Operators: Estimate Pose (and its Cancel) and Import Motion."""
