"""`python -m ingest_pipeline.cli`."""

import sys

from ingest_pipeline.cli import main

sys.exit(main())
