"""`python -m dashboard [CONFIG]`: serve the dashboard and the portal on their ports (dashboard/serve.py)."""

from __future__ import annotations

import sys

from dashboard.serve import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
