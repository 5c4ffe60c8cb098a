"""occ4d.metrics"""
