"""POS terminal simulator: a Textual TUI talking ISO 8583 to a host over TCP."""
