"""poslab-bench: a closed-loop load generator for the host, and the bare codec ceiling server."""
