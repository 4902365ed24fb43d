"""The registry layer: pseudonymised, harmonised tables built by `sql/`, and the analysts' published copy."""
