"""Readers and writers of occupancy formats and info files."""
