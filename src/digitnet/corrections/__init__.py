"""People's corrections of the served model: kept in SQLite (``store``), read as labelled
28x28 digits (``dataset``), exported as IDX files or PNGs (``export``)."""
