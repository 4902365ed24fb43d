"""Dagster orchestration of the registry: assets by layer, their checks and their resources."""
