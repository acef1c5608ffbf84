"""``python -m app`` starts the Sfumato window."""

import sys

from app.main import main

sys.exit(main())
