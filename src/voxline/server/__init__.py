"""The ASGI application: routes, shared services, metrics."""
