"""Marshmallow schemas: the HTTP contract, nothing else."""
