"""The registry's default settings files (protocol, limits, quality, privacy); package data read through
`ketreg.package_data.config_file`, not code."""
