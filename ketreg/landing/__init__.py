"""The landing folder: what sites dropped, and reading it as the canonical contract's text."""
