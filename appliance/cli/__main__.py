"""`python -m appliance.cli ...`: the `appliance` command without its console script (tests, deploy)."""

import sys

from appliance.cli import main

sys.exit(main())
