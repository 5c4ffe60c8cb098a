"""occ4d.commands"""
