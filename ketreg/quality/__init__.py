"""Data quality of the registry: Great Expectations suites derived from the contract, the history of check
results per run, and the static quality dashboard."""
