"""The canonical site-export contract (v1): one Pandera model per file, the protocol's limits, and
the rules that turn canonical text into typed, validated rows."""
