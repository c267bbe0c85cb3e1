"""Small helpers shared by the roles: one place for each repeated mechanism."""
