"""`python -m dashboard [CONFIG]`: serve the dashboard and the portal (waitress) on `dashboard.listen`."""

from __future__ import annotations

import sys

from dashboard.serve import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
