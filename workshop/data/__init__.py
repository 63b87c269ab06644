"""Data in and out: the generated sample dataset, file importers and the live reddit fetch."""
