"""``python -m lab_app.service --host HOST --port PORT``: what the container image runs."""

import sys

from lab_app.service.cli import main

sys.exit(main())
