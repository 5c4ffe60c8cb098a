"""occ4d.diffusion"""
