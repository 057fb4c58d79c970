"""vidgrid: fast video recognition training with multigrid schedules (Wu et al., CVPR 2020)."""

__version__ = "0.1.0"
