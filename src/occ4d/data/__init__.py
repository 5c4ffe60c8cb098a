"""occ4d.data"""
