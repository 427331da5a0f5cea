"""Passes `Trace -> Trace`, each small and named for its effect."""
