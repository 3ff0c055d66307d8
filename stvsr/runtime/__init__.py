"""stvsr.runtime."""
