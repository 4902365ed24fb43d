"""Third-party assets shipped with the package (`vendor/data-docs/`: the offline Data Docs); package data,
not code."""
