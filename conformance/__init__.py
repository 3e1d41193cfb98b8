"""socikit's SOCI conformance suite: run any SOCI producer over golden vectors, compare what it
wrote byte for byte with the reference's output and validate it (see README.md)."""
