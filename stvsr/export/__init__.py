"""stvsr.export."""
