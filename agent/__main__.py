"""``python -m agent``: run the host agent's command line (see ``agent.main``)."""
import sys

from agent.main import main

sys.exit(main())
