"""One module per ``digitnet`` subcommand; each parses its options and calls the library."""
