"""``python -m tinygrad_lm`` runs the command line."""
import sys

from .cli import main

sys.exit(main())
