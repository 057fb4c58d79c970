"""`python -m vidgrid ...` (what `torchrun -m vidgrid train ...` runs)."""

from vidgrid.cli import main

raise SystemExit(main())
