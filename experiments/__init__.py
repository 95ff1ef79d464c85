"""Thin command-line scripts over the library: ``python -m experiments.exp2 --n 13``."""
