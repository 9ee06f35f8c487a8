"""A multi-tenant SaaS API built only from lift_asgi's public API.

Its contract is examples/saas/README.md."""
