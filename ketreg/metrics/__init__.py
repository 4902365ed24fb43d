"""Registry metrics: what the next prospective studies are designed from (responders, safety, durability,
interruptions, completeness, predictors of response and study planning), in the `metrics` schema."""
