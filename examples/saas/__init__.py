"""A multi-tenant SaaS API built only from lift_asgi's public API (see EXAMPLE_CONTRACT)."""
