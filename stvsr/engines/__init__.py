"""stvsr.engines."""
