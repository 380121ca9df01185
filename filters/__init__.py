"""Pure matching: list parsers and the compiled filter index. Knows nothing of children, sockets or files."""
