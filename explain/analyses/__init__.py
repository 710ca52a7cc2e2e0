"""Analyses: what pages, the report CLI and batch runs compute, each defined once."""
