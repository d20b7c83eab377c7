"""Pictures: the figures (grids, curves, confusion, filters) and the predictions they show."""
