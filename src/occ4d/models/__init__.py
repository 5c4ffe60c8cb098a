"""occ4d.models"""
