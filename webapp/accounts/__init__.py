"""Login, the login-required middleware and the health endpoint."""
