"""Staging: each export's files read, typed and validated; accepted rows and quarantined rows kept per export."""
