"""The registry's DuckDB files: the private working database and the SQL files that build it."""
