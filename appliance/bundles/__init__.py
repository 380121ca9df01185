"""Head office's signed filter-list bundles: building and signing them (head office), and fetching,
verifying, compiling and swapping them in with rollback (every centre)."""
