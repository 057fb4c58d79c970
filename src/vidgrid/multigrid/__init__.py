"""vidgrid.multigrid"""
