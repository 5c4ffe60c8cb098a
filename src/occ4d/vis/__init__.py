"""occ4d.vis"""
