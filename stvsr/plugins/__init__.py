"""stvsr.plugins."""
