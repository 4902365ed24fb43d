"""What may be shared beyond the registry team: figures with small cells suppressed (docs/privacy.md)."""
