"""SQL files of the registry, by layer (`sql/<layer>/<name>.sql`); package data read through
`ketreg.warehouse.sql_files`, not code."""
