"""vidgrid.engine"""
