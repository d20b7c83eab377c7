"""The server's routes, one module per concern: reading, corrections, admin, on-device."""
