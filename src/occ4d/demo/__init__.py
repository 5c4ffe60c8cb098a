"""``occ4d demo``: the system end to end on the synthetic world (stages.py runs it; models.py
trains, forecasts and generates with the tiny world models)."""
