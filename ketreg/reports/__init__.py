"""Reports for people outside the pipeline: each site's data-manager folder (its own records only)."""
