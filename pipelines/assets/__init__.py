"""Assets by layer: landing → staging → registry → publish."""
