"""occ4d.synth"""
