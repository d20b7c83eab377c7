"""The server's routes, one module per concern: reading, explaining, corrections, admin,
on-device."""
