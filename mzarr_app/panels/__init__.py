"""Dock panels of the main window: contrast, slicing, editing and metadata."""
