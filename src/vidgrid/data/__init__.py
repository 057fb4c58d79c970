"""vidgrid.data"""
