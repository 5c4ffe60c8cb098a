"""occ4d.train"""
