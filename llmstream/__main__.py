"""`python -m llmstream` is the `llmstream` command."""

import sys

from llmstream.cli import main

sys.exit(main())
